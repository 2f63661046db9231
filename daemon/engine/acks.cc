// RemotePath, part: acks. The receiving daemon answers every data frame: a
// delivery goes in the batch of its poll (kDataAcks, flushed at the end of
// every poll), a failure alone and at once (kDataAck). The sending daemon
// completes the send on its answer and sends what waited behind the window.
// A node that answers none of what is in flight for peers.dead_after_ms is
// dropped, whatever its keepalives say: a send never waits forever. The
// window, the batches and the stall check are the node's link's (NodeLink).
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/wire/data.h"
#include "daemon/engine/remote_path.h"
#include "daemon/transfer/gpu_by_handle.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

void RemotePath::Ack(const Incoming& message, const absl::Status& status) {
  NodeLink* n = FindLink(message.node);
  // Gone with its connection (a later one is another link): the sender
  // failed the message on its side already.
  if (n == nullptr || n->generation() != message.generation) return;
  n->Ack(message.message_id, status);
}

void RemotePath::FlushAcksFromLoop() {
  AXON_DCHECK_ON_LOOP();
  if (ack_batches_ == 0) return;
  // Sending never drops a node on the spot (UCX errors come back deferred,
  // through the worker), so the map stays as it is while this walks it.
  for (auto& [node, link] : links_) link->FlushAcks();
}

void RemotePath::OnAck(const std::string& node, const wire::AckBody& ack) {
  NodeLink* n = FindLink(node);
  if (n != nullptr && Answered(*n, ack)) Drain(node);
}

void RemotePath::OnAcks(const std::string& node, absl::Span<const uint64_t> message_ids) {
  uint64_t answered = 0;
  for (uint64_t id : message_ids) {
    // Looked up for each: a completion may (in principle) drop the node.
    NodeLink* n = FindLink(node);
    if (n == nullptr) return;
    answered += Answered(*n, wire::AckBody{.message_id = id});
  }
  if (answered > 0) Drain(node);
}

void RemotePath::CheckProgressFromLoop() {
  std::vector<std::pair<std::string, std::string>> stalled;
  for (auto& [node, link] : links_) {
    if (std::optional<std::string> why = link->Stalled()) stalled.emplace_back(node, *why);
  }
  // Dropping fails the node's work through OnNodeDown, which erases it.
  for (const auto& [node, why] : stalled) transport_.Drop(node, why);
}

bool RemotePath::Answered(NodeLink& n, const wire::AckBody& ack) {
  Outgoing* sent = n.InFlight(ack.message_id);
  if (sent == nullptr) {
    spdlog::warn("peer {}: ack for unknown message {}", n.node(), ack.message_id);
    return false;
  }
  absl::Status status = ack.status();
  if (status.code() == absl::StatusCode::kCancelled && !sent->aborted.ok()) status = sent->aborted;
  if (!sent->chunks && sent->handle.empty()) {  // the common case: not moved
    const uint64_t session = sent->session, op_id = sent->op_id, tag = sent->tag;
    const uint64_t length = status.ok() ? sent->length : 0;
    const bool quiet = sent->quiet;
    n.Settle(ack.message_id);  // its memory is free for the client from here
    hooks_.complete(session, op_id, std::move(status), length, tag, quiet);
    return true;
  }
  Outgoing send = *n.Answered(ack.message_id);
  if (!send.handle.empty()) handles_->Answered(n, send, ack);
  Finish(send, status);
  return true;
}

}  // namespace axon::daemon
