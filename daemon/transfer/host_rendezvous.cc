#include "daemon/transfer/host_rendezvous.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

void HostRendezvous::Send(NodeLink& link, Outgoing&& send) {
  path_.PostInPlace(link, std::move(send));
}

void HostRendezvous::Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                          uint8_t* into, Then then) {
  ucx::Worker::ReceiveData(
      std::move(message->pending), into,
      [alive = path_.alive(), message, keep = std::move(region),
       then = std::move(then)](const absl::Status& st) {
        if (!*alive) return;
        then(st.ok() ? st
                     : absl::UnavailableError(absl::StrCat(
                           "pulling the message from ", message->node, " failed: ", st.message())));
      });
}

}  // namespace axon::daemon
