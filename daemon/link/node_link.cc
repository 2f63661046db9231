#include "daemon/link/node_link.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/wire/data.h"

namespace axon::daemon {

NodeLink::NodeLink(std::string node, uint64_t generation, Limits limits, LinkTransport& transport,
                   const Clock& clock, size_t& ack_batches)
    : node_(std::move(node)),
      generation_(generation),
      limits_(limits),
      transport_(transport),
      clock_(clock),
      ack_batches_(ack_batches) {}

NodeLink::~NodeLink() {
  // Acks owed to a node gone go with it: its side failed those sends already.
  if (!unsent_acks_.empty()) --ack_batches_;
}

std::optional<Outgoing> NodeLink::TakeReady() {
  if (waiting_.empty() || !CanSend()) return std::nullopt;
  Outgoing next = std::move(waiting_.front());
  waiting_.pop_front();
  return next;
}

void NodeLink::Sent(uint64_t message_id, Outgoing&& send) {
  ++next_send_sequence_;
  sent_.Emplace(message_id, std::move(send));
}

Outgoing* NodeLink::InFlight(uint64_t message_id) { return sent_.Find(message_id); }

std::optional<Outgoing> NodeLink::Answered(uint64_t message_id) {
  std::optional<Outgoing> send = sent_.Take(message_id);
  if (send) ++answered_;
  return send;
}

void NodeLink::Settle(uint64_t message_id) {
  if (sent_.Erase(message_id)) ++answered_;
}

bool NodeLink::Release(uint64_t key) {
  auto it = std::find(holds_.begin(), holds_.end(), key);
  if (it == holds_.end()) return false;
  holds_.erase(it);
  return true;
}

std::optional<Outgoing> NodeLink::TakeWaiting(uint64_t session, uint64_t op_id) {
  auto it = std::find_if(waiting_.begin(), waiting_.end(), [&](const Outgoing& o) {
    return o.session == session && o.op_id == op_id;
  });
  if (it == waiting_.end()) return std::nullopt;
  Outgoing send = std::move(*it);
  waiting_.erase(it);
  return send;
}

bool NodeLink::Withdraw(uint64_t session, uint64_t op_id, const absl::Status& why) {
  bool found = false;
  sent_.ForEach([&](uint64_t id, Outgoing& send) {
    if (send.session != session || send.op_id != op_id) return;
    found = true;
    if (send.aborted.ok()) {  // withdrawn once
      send.aborted = why;
      SendCancel(id);
    }
  });
  return found;
}

void NodeLink::DropSession(uint64_t session, const absl::Status& why) {
  std::erase_if(waiting_, [session](const Outgoing& o) { return o.session == session; });
  sent_.ForEach([&](uint64_t id, Outgoing& send) {
    if (send.session != session) return;
    // One withdrawn already keeps its reason (a refused probe is then
    // finished, not sent again).
    if (send.aborted.ok()) send.aborted = why;
    SendCancel(id);
  });
}

void NodeLink::SendCancel(uint64_t message_id) {
  transport_.SendControl(node_, wire::MessageType::kDataCancel, wire::EncodeCancel(message_id));
}

NodeLink::Arrival NodeLink::Receive(
    uint64_t sequence, const std::shared_ptr<Incoming>& in,
    absl::FunctionRef<void(const std::shared_ptr<Incoming>&)> deliver) {
  if (sequence != next_receive_sequence_) {
    if (sequence < next_receive_sequence_ || early_.contains(sequence)) return Arrival::kRepeated;
    early_.emplace(sequence, in);
    return Arrival::kEarly;
  }
  deliver(in);
  ++next_receive_sequence_;
  // Whatever waited for this one follows in order.
  for (auto it = early_.begin(); it != early_.end() && it->first == next_receive_sequence_;
       it = early_.erase(it)) {
    deliver(it->second);
    ++next_receive_sequence_;
  }
  return Arrival::kDelivered;
}

void NodeLink::Ack(uint64_t message_id, const absl::Status& status) {
  if (status.ok()) {
    if (unsent_acks_.empty()) ++ack_batches_;
    unsent_acks_.push_back(message_id);
    if (unsent_acks_.size() == wire::kMaxAckedIds) FlushAcks();
    return;
  }
  FlushAcks();  // the batch came first
  transport_.SendControl(node_, wire::MessageType::kDataAck, wire::EncodeAck(message_id, status));
}

void NodeLink::FlushAcks() {
  if (unsent_acks_.empty()) return;
  encoded_ = wire::EncodeAcks(unsent_acks_, std::move(encoded_));
  transport_.SendControl(node_, wire::MessageType::kDataAcks, encoded_);
  unsent_acks_.clear();
  --ack_batches_;
}

std::optional<std::string> NodeLink::Stalled() {
  const absl::Time now = clock_.Now();
  if (sent_.empty() || answered_ != answered_seen_ || !progress_seen_) {
    answered_seen_ = answered_;
    progress_seen_ = now;
    return std::nullopt;
  }
  if (now - *progress_seen_ <= limits_.dead_after) return std::nullopt;
  return absl::StrCat(sent_.size(), " message(s) in flight and none acknowledged for ",
                      absl::ToInt64Milliseconds(limits_.dead_after), " ms (peers.dead_after_ms)");
}

std::vector<Outgoing> NodeLink::TakeUnanswered() {
  std::vector<uint64_t> ids;
  ids.reserve(sent_.size());
  sent_.ForEach([&](uint64_t id, const Outgoing&) { ids.push_back(id); });
  std::sort(ids.begin(), ids.end());
  std::vector<Outgoing> all;
  all.reserve(ids.size() + waiting_.size());
  for (uint64_t id : ids) all.push_back(*sent_.Take(id));
  sent_.Clear();
  for (Outgoing& o : waiting_) all.push_back(std::move(o));
  waiting_.clear();
  early_.clear();
  holds_.clear();
  return all;
}

}  // namespace axon::daemon
