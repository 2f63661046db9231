#include "daemon/transfer/host_eager.h"

#include <cstring>
#include <utility>

#include "daemon/engine/remote_path.h"

namespace axon::daemon {

void HostEager::Send(NodeLink& link, Outgoing&& send) { path_.PostInPlace(link, std::move(send)); }

bool HostEager::LandsAtOnce(const Incoming& message, const Region& region) {
  return !message.chunked && !message.source && !message.pending &&
         (!region.on_gpu() || message.data.empty());
}

void HostEager::Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                     uint8_t* into, Then then) {
  if (message->data.empty() || !region->on_gpu()) {
    if (!message->data.empty()) std::memcpy(into, message->data.data(), message->data.size());
    then(absl::OkStatus());
    return;
  }
  GpuCopier& copier = path_.copier();
  auto st = copier.Copy(region->device(), into, message->data.data(), message->data.size());
  if (!st.ok()) {
    then(st);
    return;
  }
  // `message` holds UCX's buffer, `region` the target, until the copy is done.
  copier.Then(region->device(), [alive = path_.alive(), message, region,
                                 then = std::move(then)](absl::Status copied) {
    if (*alive) then(copied);
  });
}

}  // namespace axon::daemon
