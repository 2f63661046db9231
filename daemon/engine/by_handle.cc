// RemotePath, part: GPU messages by CUDA IPC handle, between daemons on one
// host. The bounce paths copy a GPU tensor three times (into the sender's
// bounce buffer, across, out of the receiver's); here the receiving daemon
// opens the sender's client memory from its legacy IPC handle and copies
// once, straight into the posted buffer, as UCX's own cuda_ipc would (UCX
// cannot itself use memory opened from another process's handle).
//
// Order and fallback: the first message naming a handle a node has not
// opened yet is a probe, and later sends to that node wait for the node's
// kDataHandleAnswer, sent as soon as it tried to open the handle (before the
// message is matched: an unmatched probe holds nothing up for long). A node
// that could not open it did not deliver the message, which then goes
// through bounce buffers, still ahead of the sends behind it; that node
// takes no more handles on this connection.
//
// Lifetime: the receiver keeps each handle open (one mapping per allocation,
// shared with its own registry) until the sender says it let go of the
// memory (kDataHandleClosed, sent from the peer tick once the sender's own
// mapping has closed) or the node goes down, so a client's cudaFree frees
// the memory within a tick of its last unregistration.
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

absl::StatusOr<std::string> RemotePath::BusId(int device) {
  auto it = bus_ids_.find(device);
  if (it != bus_ids_.end()) return it->second;
  auto bus_id = cuda::BusIdOf(device);
  if (!bus_id.ok()) return bus_id.status();
  bus_ids_.emplace(device, *bus_id);
  return bus_id;
}

bool RemotePath::SendByHandle(NodeLink& n, Outgoing& send) {
  // Zero bytes have no place in an allocation to name (and the peer refuses
  // a handle without a length): they go the usual way.
  if (!limits_.same_host_handles || n.handles.refused || !send.more.empty() || send.length == 0 ||
      !DirectWith(send.node) || !peers_.PeerSharesGpusFromLoop(send.node)) {
    return false;
  }
  std::optional<IpcSource> source = send.region->IpcSourceOf(send.region->data() + send.offset);
  if (!source) return false;  // VMM memory has no legacy handle
  auto bus_id = BusId(send.region->device());
  if (!bus_id.ok()) return false;
  Shared& shared = shared_[source->handle];
  // The memory of a handle let go since the last sweep, registered again
  // (or another allocation with the same handle): the nodes close the old
  // mapping first, and the send below probes afresh.
  if (shared.mapping.expired()) CloseHandle(source->handle, shared);
  shared.mapping = source->mapping;
  shared.nodes.insert(send.node);
  const bool probe = !n.handles.opened.contains(source->handle);
  wire::DataBody body{.handle = source->handle,
                      .bus_id = *std::move(bus_id),
                      .handle_offset = source->offset,
                      .length = send.length,
                      .probe = probe};
  send.handle = std::move(source->handle);
  send.generation = n.generation();
  const uint64_t id = next_message_id_;  // Post's
  Post(n, std::move(send), {}, {}, std::move(body));
  if (const Outgoing* sent = n.InFlight(id)) {
    ++by_handle_;
    by_handle_bytes_ += sent->length;
    if (probe) n.Hold(id);  // until its answer
  }
  return true;
}

bool RemotePath::OpenHandle(Incoming& in) {
  const auto refuse = [&](const absl::Status& why) {
    spdlog::warn("peer {}: cannot open the CUDA IPC handle of message {} ({}); it sends the bytes",
                 in.node, in.message_id, why.message());
    Answer(in, why);
    return false;
  };
  if (!peers_.PeerSharesGpusFromLoop(in.node)) {  // not on this host, as far as UCX can tell
    return refuse(absl::FailedPreconditionError("the peer shares no GPUs with this daemon"));
  }
  if (!ipc_ || !limits_.same_host_handles) {
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
    RefuseFromLoop(in, absl::InvalidArgumentError(absl::StrCat(
                           "bytes [", in.handle_offset, ", +", in.total,
                           ") lie outside the sender's GPU allocation of ", size, " bytes")));
    return false;
  }
  in.source = std::make_shared<CudaRegion>(it->second, in.handle_offset, in.total, ipc_, in.handle);
  if (in.probe) Answer(in, absl::OkStatus());
  return true;
}

void RemotePath::LandByHandle(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                              uint8_t* into, std::function<void(absl::Status)> then) {
  const Region& source = *message->source;
  const int device = source.device();
  ++by_handle_;
  by_handle_bytes_ += message->total;
  if (auto st =
          CopyOnGpu(copier_, device, {{source.data(), message->total}}, *region, into, {region});
      !st.ok()) {
    then(st);
    return;
  }
  // `message` holds the sender's memory open, `region` the target, until then.
  copier_.Then(device, [alive = alive_, message, region, then = std::move(then)](absl::Status st) {
    if (*alive) then(st);
  });
}

void RemotePath::Answer(const Incoming& in, const absl::Status& opened) {
  transport_.SendControl(in.node, wire::MessageType::kDataHandleAnswer,
                         wire::EncodeAck(in.message_id, opened));
}

void RemotePath::OnHandleAnswer(const std::string& node, const wire::AckBody& answer) {
  NodeLink* link = FindLink(node);
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
    Drain(node);
    return;
  }
  const wire::AckBody& refusal = answer;
  Outgoing send = *n.Answered(answer.message_id);  // out of the window, to go again
  --by_handle_;  // it goes again through bounce buffers, counted there
  by_handle_bytes_ -= send.length;
  if (!n.handles.refused) {
    spdlog::warn(
        "node {} cannot open CUDA IPC handles from this daemon ({}): GPU data to it "
        "goes through bounce buffers",
        node, refusal.message);
  }
  n.handles.refused = true;
  send.handle.clear();
  if (!send.aborted.ok()) {  // withdrawn meanwhile: it never arrived
    Finish(send, send.aborted);
  } else {
    // Ahead of everything behind it when it was a probe (they waited); a
    // later refusal (a handle that opened before, refused now) may let
    // messages sent meanwhile overtake it.
    if (!probe) spdlog::warn("node {}: a refused message goes again, out of order", node);
    Transmit(n, std::move(send));
  }
  Drain(node);
}

void RemotePath::OnHandleClosed(const std::string& node, const std::string& handle) {
  opened_.erase({node, handle});  // landings still running hold it until done
}

void RemotePath::SweepHandlesFromLoop() {
  for (auto it = shared_.begin(); it != shared_.end();) {
    if (!it->second.mapping.expired()) {
      ++it;
      continue;
    }
    CloseHandle(it->first, it->second);
    it = shared_.erase(it);
  }
}

void RemotePath::CloseHandle(const std::string& handle, Shared& shared) {
  for (const std::string& node : shared.nodes) {
    transport_.SendControl(node, wire::MessageType::kDataHandleClosed,
                           wire::EncodeHandleClosed(handle));
    if (NodeLink* n = FindLink(node)) n->handles.opened.erase(handle);
  }
  shared.nodes.clear();
}

}  // namespace axon::daemon
