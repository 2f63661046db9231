// NodeLink: this daemon's side of its connection to one other node, for the
// data plane. It owns what makes that connection a reliable, ordered stream
// of messages, whatever kind of transfer moves each one:
//
//   sending    the data frames' sequence numbers, the window (at most
//              max_in_flight messages unanswered; later ones wait here, in
//              order), holds (a transfer that must go first: a GPU send
//              being copied, a handle probe), and the sends in flight by
//              message id until their ack;
//   cancel     withdrawing a waiting send, or one in flight (kDataCancel);
//   receiving  data frames handed on in sequence order, early ones parked;
//   acks       deliveries batched into one kDataAcks per flush, failures
//              sent alone and at once, after the batch;
//   progress   a link with sends in flight and none answered for
//              dead_after is stalled.
//
// A link lives and dies with its connection: a new connection to the node
// starts a new link, sequences from 1, and nothing of the old one is used.
// The transfer kinds (RemotePath and its parts) decide how each message's
// bytes move; a link never looks at them.
//
// Single-threaded: the engine's loop thread only. Time comes from a Clock and
// frames go out through a LinkTransport, so tests drive it with fakes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/slot_map.h"
#include "daemon/engine/records.h"
#include "daemon/link/link_transport.h"

namespace axon::daemon {

class NodeLink {
 public:
  struct Limits {
    uint64_t max_in_flight = 1024;
    // Messages in flight and none answered for this long: stalled.
    absl::Duration dead_after = absl::Seconds(3);
  };

  // `ack_batches` counts, over all of the engine's links, those with
  // deliveries not yet acknowledged (so the engine knows in O(1) whether to
  // flush before sleeping).
  NodeLink(std::string node, uint64_t generation, Limits limits, LinkTransport& transport,
           const Clock& clock, size_t& ack_batches);
  ~NodeLink();
  NodeLink(const NodeLink&) = delete;
  NodeLink& operator=(const NodeLink&) = delete;

  const std::string& node() const { return node_; }
  // Tells this connection's link from an earlier or later one to the node.
  uint64_t generation() const { return generation_; }

  // --- Sending: the window, in order.

  // Whether a new send must wait: others wait already, the window is full,
  // or something holds the link.
  bool MustWait() const { return !waiting_.empty() || !CanSend(); }
  // Queues `send` behind the others.
  void Wait(Outgoing&& send) { waiting_.push_back(std::move(send)); }
  // The first waiting send, if the window and the holds let it go now.
  std::optional<Outgoing> TakeReady();
  // The sequence number of the next data frame.
  uint64_t next_sequence() const { return next_send_sequence_; }
  // The transport took data frame `message_id`, numbered next_sequence():
  // it is in the window until answered.
  void Sent(uint64_t message_id, Outgoing&& send);
  // A send in flight, or null.
  Outgoing* InFlight(uint64_t message_id);
  // Takes the send `message_id` out of the window: it was answered (or
  // taken back to go again). Null when no such send is in flight.
  std::optional<Outgoing> Answered(uint64_t message_id);
  // The same, for a send the caller is done with (it read what it needed
  // through InFlight): nothing is moved.
  void Settle(uint64_t message_id);
  uint64_t in_flight() const { return sent_.size(); }
  size_t waiting() const { return waiting_.size(); }

  // Holds keep later sends waiting until released, so that one transfer
  // goes first (a GPU send being copied before it can be posted, a probe
  // whose answer decides how the next ones go). Each has a key; Release
  // says whether `key` held the link.
  void Hold(uint64_t key) { holds_.push_back(key); }
  bool Release(uint64_t key);
  bool held() const { return !holds_.empty(); }
  bool HeldBy(uint64_t key) const {
    return std::find(holds_.begin(), holds_.end(), key) != holds_.end();
  }
  // The hold of a link whose connection is being made (on first use): no
  // message id is this.
  static constexpr uint64_t kConnectingHold = ~uint64_t{0};

  // --- Cancel.

  // Takes the waiting send (session, op_id) out of the queue.
  std::optional<Outgoing> TakeWaiting(uint64_t session, uint64_t op_id);
  // Withdraws the sends in flight of (session, op_id) from the receiver
  // (each chunk of a chunked send is one): their ack, when it comes, says
  // CANCELLED (reported as `why`) or OK if it was delivered first. False
  // when none is in flight.
  bool Withdraw(uint64_t session, uint64_t op_id, const absl::Status& why);
  // A session closed: its waiting sends go without a word (nobody is left
  // to tell), and its sends in flight are withdrawn.
  void DropSession(uint64_t session, const absl::Status& why);

  // --- Receiving: in sequence order.

  enum class Arrival { kDelivered, kEarly, kRepeated };
  // Data frame `sequence` arrived: handed to `deliver` now, with every
  // early one it lets through (kDelivered); parked until the frames before
  // it come (kEarly); or refused, a sequence seen before (kRepeated).
  Arrival Receive(uint64_t sequence, const std::shared_ptr<Incoming>& in,
                  absl::FunctionRef<void(const std::shared_ptr<Incoming>&)> deliver);

  // --- Acks.

  // Answers message `message_id` from the node: OK goes into the batch
  // (sent when full or flushed), a failure at once, after the batch.
  void Ack(uint64_t message_id, const absl::Status& status);
  void FlushAcks();
  bool acks_pending() const { return !unsent_acks_.empty(); }

  // --- Progress.

  // Why the link is stalled (sends in flight, none answered for
  // dead_after), or nothing. Called on the peer plane's tick.
  std::optional<std::string> Stalled();

  // --- The connection went.

  // Every send not answered, in the order it was sent: those in flight by
  // message id, then those waiting. The link is empty after.
  std::vector<Outgoing> TakeUnanswered();
  // The waiting sends alone, in order (none of them left).
  std::deque<Outgoing> TakeAllWaiting() { return std::exchange(waiting_, {}); }

  // Set by the path once the link's connection was up (so that sends that
  // never left may go again on the next one).
  bool connected = false;

  // By handle (by_handle.cc): the handles the node opened on this
  // connection, and whether it refuses more. Dies with the connection, as
  // the node's mappings do.
  struct Handles {
    std::set<std::string> opened;
    bool refused = false;
  };
  Handles handles;

 private:
  bool CanSend() const { return sent_.size() < limits_.max_in_flight && holds_.empty(); }
  void SendCancel(uint64_t message_id);

  const std::string node_;
  const uint64_t generation_;
  const Limits limits_;
  LinkTransport& transport_;
  const Clock& clock_;
  size_t& ack_batches_;

  uint64_t next_send_sequence_ = 1;
  uint64_t next_receive_sequence_ = 1;
  std::deque<Outgoing> waiting_;
  absl::InlinedVector<uint64_t, 2> holds_;
  // By message id, awaiting their ack: one is added and one removed per
  // message, and each stays in place meanwhile; where order matters the
  // ids are sorted first.
  SlotMap<uint64_t, Outgoing> sent_;
  std::map<uint64_t, std::shared_ptr<Incoming>> early_;  // ahead of a gap
  std::vector<uint64_t> unsent_acks_;
  std::vector<uint8_t> encoded_;  // kDataAcks bodies (storage kept)
  // Sends answered so far, and as of when Stalled() last saw them change or
  // saw nothing in flight: counted, so that the per-message path reads no
  // clock.
  uint64_t answered_ = 0;
  uint64_t answered_seen_ = 0;
  std::optional<absl::Time> progress_seen_;
};

}  // namespace axon::daemon
