// RemotePath, part: acks. The receiving daemon answers every data frame: a
// delivery goes in the batch of its poll (kDataAcks, flushed at the end of
// every poll), a failure alone and at once (kDataAck). The sending daemon
// completes the send on its answer and sends what waited behind the window.
// A node that answers none of what is in flight for peers.dead_after_ms is
// dropped, whatever its keepalives say: a send never waits forever.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/wire/data.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {

void RemotePath::Ack(const std::string& node, uint64_t message_id, const absl::Status& status) {
  // Every message came with a Node entry (OnData), which goes with its
  // connection: none means the node went away, and its side failed the
  // message already.
  Node* n = FindNode(node);
  if (status.ok()) {
    if (n == nullptr) return;
    if (n->unsent_acks.empty()) ++ack_batches_;
    n->unsent_acks.push_back(message_id);
    if (n->unsent_acks.size() == wire::kMaxAckedIds) FlushAcks(node, *n);
    return;
  }
  // A failure goes alone, with its reason (after the batch, which came first).
  if (n != nullptr) FlushAcks(node, *n);
  // A peer that went down has failed the message on its side already.
  (void)peers_.SendDataFromLoop(node, wire::MessageType::kDataAck,
                                wire::EncodeAck(message_id, status), {}, {},
                                ucx::AmProtocol::kEager, 0);
}

void RemotePath::FlushAcks(const std::string& node, Node& n) {
  if (n.unsent_acks.empty()) return;
  encoded_ = wire::EncodeAcks(n.unsent_acks, std::move(encoded_));
  (void)peers_.SendDataFromLoop(node, wire::MessageType::kDataAcks, encoded_, {}, {},
                                ucx::AmProtocol::kEager, 0);
  n.unsent_acks.clear();
  --ack_batches_;
}

void RemotePath::FlushAcksFromLoop() {
  if (ack_batches_ == 0) return;
  // Sending never drops a node on the spot (UCX errors come back deferred,
  // through the worker), so the map stays as it is while this walks it.
  for (auto& [node, n] : nodes_) FlushAcks(node, n);
}

void RemotePath::OnAck(const std::string& node, const wire::AckBody& ack) {
  if (Answered(node, ack)) Reopen(node, 1);
}

void RemotePath::OnAcks(const std::string& node, absl::Span<const uint64_t> message_ids) {
  uint64_t answered = 0;
  for (uint64_t id : message_ids) answered += Answered(node, wire::AckBody{.message_id = id});
  if (answered > 0) Reopen(node, answered);
}

void RemotePath::Reopen(const std::string& node, uint64_t answered) {
  // Looked up after the completions (which do not drop nodes today; this
  // would still hold if they did).
  Node* n = FindNode(node);
  if (n == nullptr) return;
  n->in_flight -= answered;
  n->answered += answered;
  Drain(*n);
}

void RemotePath::CheckProgressFromLoop() {
  const absl::Time now = absl::Now();
  std::vector<std::pair<std::string, uint64_t>> stalled;
  for (auto& [node, n] : nodes_) {
    if (n.in_flight == 0 || n.answered != n.answered_seen ||
        n.progress_seen == absl::InfiniteFuture()) {
      n.answered_seen = n.answered;
      n.progress_seen = now;
    } else if (now - n.progress_seen > limits_.dead_after) {
      stalled.emplace_back(node, n.in_flight);
    }
  }
  // Dropping fails the node's work through OnNodeDown, which erases it.
  for (const auto& [node, in_flight] : stalled) {
    const std::string why =
        absl::StrCat(in_flight, " message(s) in flight and none acknowledged for ",
                     absl::ToInt64Milliseconds(limits_.dead_after), " ms (peers.dead_after_ms)");
    dropping_why_ = why;
    peers_.DropFromLoop(node, why);
    dropping_why_.clear();
  }
}

bool RemotePath::Answered(const std::string& node, const wire::AckBody& ack) {
  auto it = in_flight_.find(ack.message_id);
  if (it == in_flight_.end() || it->second.node != node) {
    spdlog::warn("peer {}: ack for unknown message {}", node, ack.message_id);
    return false;
  }
  absl::Status status = ack.status();
  if (status.code() == absl::StatusCode::kCancelled && !it->second.aborted.ok()) {
    status = it->second.aborted;
  }
  if (!it->second.chunks && it->second.handle.empty()) {  // the common case: not moved
    const Outgoing& send = it->second;
    const uint64_t session = send.session, op_id = send.op_id, tag = send.tag;
    const uint64_t length = status.ok() ? send.length : 0;
    in_flight_.erase(it);  // its memory is free for the client from here
    hooks_.complete(session, op_id, std::move(status), length, tag);
    return true;
  }
  Outgoing send = std::move(it->second);
  in_flight_.erase(it);
  if (!send.handle.empty()) {
    Node& n = NodeNamed(node);
    // Delivered, so it opened there: later ones need not wait. (An error
    // ack may come before the peer tried: the next send probes again.)
    if (ack.code == absl::StatusCode::kOk) n.handles_opened.insert(send.handle);
    if (n.probe == ack.message_id) n.probe = 0;
  }
  Finish(send, status);
  return true;
}

}  // namespace axon::daemon
