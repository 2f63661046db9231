#include "daemon/transfer/gpu_by_handle.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

GpuByHandle::GpuByHandle(RemotePath& path, GpuCopier& copier, std::shared_ptr<IpcMappings> ipc,
                         bool enabled)
    : path_(path), copier_(copier), ipc_(std::move(ipc)), enabled_(enabled) {}

absl::StatusOr<std::string> GpuByHandle::BusId(int device) {
  auto it = bus_ids_.find(device);
  if (it != bus_ids_.end()) return it->second;
  auto bus_id = cuda::BusIdOf(device);
  if (!bus_id.ok()) return bus_id.status();
  bus_ids_.emplace(device, *bus_id);
  return bus_id;
}

bool GpuByHandle::Takes(const NodeLink& link, const Outgoing& send) {
  // Zero bytes have no place in an allocation to name (and the peer refuses
  // a handle without a length): they go the usual way. VMM memory has no
  // legacy handle.
  return enabled_ && !link.handles.refused && send.more.empty() && send.length != 0 &&
         path_.DirectWith(send.node) && path_.SharesGpusWith(send.node) &&
         send.region->IpcSourceOf(send.region->data() + send.offset).has_value() &&
         BusId(send.region->device()).ok();
}

void GpuByHandle::Send(NodeLink& link, Outgoing&& send) {
  std::optional<IpcSource> source = send.region->IpcSourceOf(send.region->data() + send.offset);
  auto bus_id = BusId(send.region->device());  // both known good (Takes)
  Shared& shared = shared_[source->handle];
  // The memory of a handle let go since the last sweep, registered again
  // (or another allocation with the same handle): the nodes close the old
  // mapping first, and the send below probes afresh.
  if (shared.mapping.expired()) Close(source->handle, shared);
  shared.mapping = source->mapping;
  shared.nodes.insert(send.node);
  const bool probe = !link.handles.opened.contains(source->handle);
  wire::DataBody body{.handle = source->handle,
                      .bus_id = *std::move(bus_id),
                      .handle_offset = source->offset,
                      .length = send.length,
                      .probe = probe};
  send.handle = std::move(source->handle);
  send.generation = link.generation();
  const uint64_t id = path_.next_message_id();  // Post's
  path_.Post(link, std::move(send), {}, {}, body);
  if (const Outgoing* sent = link.InFlight(id)) {
    TransferCounters& counters = path_.counters();
    ++counters.by_handle;
    counters.by_handle_bytes += sent->length;
    if (probe) link.Hold(id);  // until its answer
  }
}

bool GpuByHandle::Open(Incoming& in) {
  const auto refuse = [&](const absl::Status& why) {
    spdlog::warn("peer {}: cannot open the CUDA IPC handle of message {} ({}); it sends the bytes",
                 in.node, in.message_id, why.message());
    Answer(in, why);
    return false;
  };
  if (!path_.SharesGpusWith(in.node)) {  // not on this host, as far as UCX can tell
    return refuse(absl::FailedPreconditionError("the peer shares no GPUs with this daemon"));
  }
  if (!ipc_ || !enabled_) {
    return refuse(
        absl::FailedPreconditionError("this daemon takes no GPU handles (gpu.same_host: bounce)"));
  }
  const std::pair<std::string, std::string> key{in.node, in.handle};
  auto it = opened_.find(key);
  if (it == opened_.end()) {
    // On the sender's GPU; a copy into another GPU maps the target there.
    auto device = cuda::DeviceByBusId(in.bus_id);
    if (!device.ok()) return refuse(device.status());
    bool opened = false;
    auto memory = ipc_->Open(*device, in.handle, &opened);
    if (!memory.ok()) return refuse(memory.status());
    it = opened_.emplace(key, *std::move(memory)).first;
  }
  const uint64_t size = it->second->size();
  if (in.handle_offset > size || in.total > size - in.handle_offset) {
    path_.RefuseFromLoop(in, absl::InvalidArgumentError(absl::StrCat(
                                 "bytes [", in.handle_offset, ", +", in.total,
                                 ") lie outside the sender's GPU allocation of ", size, " bytes")));
    return false;
  }
  in.source = std::make_shared<CudaRegion>(it->second, in.handle_offset, in.total, ipc_, in.handle);
  if (in.probe) Answer(in, absl::OkStatus());
  return true;
}

void GpuByHandle::Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                       uint8_t* into, Then then) {
  const Region& source = *message->source;
  const int device = source.device();
  TransferCounters& counters = path_.counters();
  ++counters.by_handle;
  counters.by_handle_bytes += message->total;
  if (auto st =
          CopyOnGpu(copier_, device, {{source.data(), message->total}}, *region, into, {region});
      !st.ok()) {
    then(st);
    return;
  }
  // `message` holds the sender's memory open, `region` the target, until then.
  copier_.Then(device,
               [alive = path_.alive(), message, region, then = std::move(then)](absl::Status st) {
                 if (*alive) then(st);
               });
}

void GpuByHandle::Answer(const Incoming& in, const absl::Status& opened) {
  path_.transport().SendControl(in.node, wire::MessageType::kDataHandleAnswer,
                                wire::EncodeAck(in.message_id, opened));
}

void GpuByHandle::Answered(NodeLink& link, const Outgoing& send, const wire::AckBody& ack) {
  // Delivered, so it opened there: later ones need not wait. (An error ack
  // may come before the peer tried: the next send probes again.)
  if (ack.code == absl::StatusCode::kOk) link.handles.opened.insert(send.handle);
  link.Release(ack.message_id);
}

void GpuByHandle::OnAnswer(const std::string& node, const wire::AckBody& answer) {
  NodeLink* link = path_.FindLink(node);
  const Outgoing* sent = link != nullptr ? link->InFlight(answer.message_id) : nullptr;
  if (sent == nullptr || sent->handle.empty()) {
    // Answered already (a node gone and back), or never ours.
    spdlog::debug("peer {}: handle answer for unknown message {}", node, answer.message_id);
    return;
  }
  NodeLink& n = *link;
  const bool probe = n.Release(answer.message_id);
  if (answer.code == absl::StatusCode::kOk) {  // opened: its ack follows
    n.handles.opened.insert(sent->handle);
    path_.Drain(node);
    return;
  }
  Outgoing send = *n.Answered(answer.message_id);  // out of the window, to go again
  TransferCounters& counters = path_.counters();
  --counters.by_handle;  // it goes again through bounce buffers, counted there
  counters.by_handle_bytes -= send.length;
  if (!n.handles.refused) {
    spdlog::warn(
        "node {} cannot open CUDA IPC handles from this daemon ({}): GPU data to it "
        "goes through bounce buffers",
        node, answer.message);
  }
  n.handles.refused = true;
  send.handle.clear();
  if (!send.aborted.ok()) {  // withdrawn meanwhile: it never arrived
    path_.Finish(send, send.aborted);
  } else {
    // Ahead of everything behind it when it was a probe (they waited); a
    // later refusal (a handle that opened before, refused now) may let
    // messages sent meanwhile overtake it.
    if (!probe) spdlog::warn("node {}: a refused message goes again, out of order", node);
    path_.Transmit(n, std::move(send));
  }
  path_.Drain(node);
}

void GpuByHandle::OnClosed(const std::string& node, const std::string& handle) {
  opened_.erase({node, handle});  // landings still running hold it until done
}

void GpuByHandle::Sweep() {
  for (auto it = shared_.begin(); it != shared_.end();) {
    if (!it->second.mapping.expired()) {
      ++it;
      continue;
    }
    Close(it->first, it->second);
    it = shared_.erase(it);
  }
}

void GpuByHandle::Close(const std::string& handle, Shared& shared) {
  for (const std::string& node : shared.nodes) {
    path_.transport().SendControl(node, wire::MessageType::kDataHandleClosed,
                                  wire::EncodeHandleClosed(handle));
    if (NodeLink* n = path_.FindLink(node)) n->handles.opened.erase(handle);
  }
  shared.nodes.clear();
}

void GpuByHandle::NodeDown(const std::string& node) {
  std::erase_if(opened_, [&](const auto& entry) { return entry.first.first == node; });
  for (auto& [handle, shared] : shared_) shared.nodes.erase(node);
}

}  // namespace axon::daemon
