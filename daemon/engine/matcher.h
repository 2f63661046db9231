// Matcher decides which send meets which receive on this node. Per receiving
// endpoint it holds the receives posted there and the sends waiting for one
// (from this node or from others), and per session its receive area: the
// slots where messages with no posted receive land. It moves no bytes and
// completes nothing itself: every decision goes to its MatchSink, which is
// the engine in axond and a recording fake in tests. One thread: the
// engine's.
//
// Order. Sends to one endpoint match in the order they came, per tag; a
// receive that names its sender takes only that sender's messages. A send
// that finds no receive waits (back-pressure, never a drop) unless a free
// slot of the receiving session's area takes it, and it never overtakes an
// earlier message of the same source that still waits. Messages in the area
// are announced in the order they took their slots, whatever order their
// bytes finish landing in.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/last_entry.h"
#include "common/match_queue.h"
#include "common/reused_queue.h"
#include "common/wire/ring_ops.h"
#include "daemon/engine/records.h"

namespace axon::daemon {

// Where the matcher's decisions go.
class MatchSink {
 public:
  virtual ~MatchSink() = default;
  // The session that bound `endpoint` on this node, if one did.
  virtual std::optional<uint64_t> Owner(absl::string_view endpoint) = 0;
  // `send` met `receive`, which has room for it: move the bytes and complete
  // both. The sink may take what `send` holds.
  virtual void Deliver(Pending& send, const Pending& receive) = 0;
  // `send` took the slot at `into` in session `owner`'s area `area`: move
  // the bytes, complete the send when it is from this node, then call
  // Matcher::Landed(owner, sequence, ok), at once or later.
  virtual void LandInArea(const Pending& send, uint64_t owner, const std::shared_ptr<Region>& area,
                          uint8_t* into, uint64_t sequence) = 0;
  // Completes operation `op_id` of `session` with `why`, an error.
  virtual void Fail(uint64_t session, uint64_t op_id, const absl::Status& why) = 0;
  // A message landed in a slot of `session`'s area (kCompletionArrival).
  virtual void Announce(uint64_t session, const wire::Completion& arrival) = 0;
  // Tells the sending node that its message was not taken, and why.
  virtual void Refuse(const Incoming& message, const absl::Status& why) = 0;
};

class Matcher {
 public:
  Matcher(std::string node_name, MatchSink& sink) : node_name_(std::move(node_name)), sink_(sink) {}
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // A send from this node (send.session, from endpoint send.from) to
  // endpoint `to` here. Fails NOT_FOUND when nobody bound `to`.
  void Send(Pending&& send, const std::string& to);
  // A message from another node for endpoint message->to; refused when
  // nobody bound it. Kept (a copy of the pointer) only while it waits.
  void Arrive(const std::shared_ptr<Incoming>& message);
  // A receive posted by receive.session on its endpoint receive.from.
  void Receive(Pending&& receive);

  // Takes operation `op_id` of `session` out of the queues and fails it with
  // `why`; false when it is not waiting here (landing, done, or never was).
  bool Abort(uint64_t session, uint64_t op_id, const absl::Status& why);
  // Drops message `message_id` from `node`, withdrawn by its sender; false
  // when it is not waiting here.
  bool Withdraw(absl::string_view node, uint64_t message_id);
  // `node` went down: its waiting messages go, and receives that wait for
  // one of its endpoints fail UNAVAILABLE.
  void NodeDown(absl::string_view node);
  // `session` closed: its own operations and area go with it (nobody is
  // left to tell), and what others wait for from or at endpoints nobody
  // holds any more fails UNAVAILABLE.
  void SessionClosed(uint64_t session);

  // Gives `session` a receive area of `region` (host memory) cut in slots
  // of `slot_size` bytes; the number of slots. Waiting sends take them at
  // FillArea.
  absl::StatusOr<uint64_t> SetArea(uint64_t session, std::shared_ptr<Region> region,
                                   uint64_t slot_size);
  // Moves waiting sends into free slots of `session`'s area, in order.
  void FillArea(uint64_t session);
  // The client is done with slot `slot`: the next waiting message takes it.
  // A slot not in use is logged and ignored.
  void Release(uint64_t session, uint64_t slot);
  // The client took free slot `slot` for itself (logged when not free).
  void Claim(uint64_t session, uint64_t slot);
  // Landing `sequence` in `session`'s area finished (MatchSink::LandInArea).
  void Landed(uint64_t session, uint64_t sequence, bool ok);

  // What waits, for tests and stats.
  size_t sends_waiting(const std::string& endpoint) const;
  size_t receives_waiting(const std::string& endpoint) const;
  size_t free_slots(uint64_t session) const;

 private:
  struct EndpointQueues {
    // Matched by tag in posting order; kept storage: a queue per endpoint
    // allocates nothing per message.
    MatchQueue<Pending> receives;
    MatchQueue<Pending> sends;
  };
  struct Area {
    std::shared_ptr<Region> region;
    uint64_t slot_size = 0;
    std::vector<uint64_t> free;  // slot indexes
    std::vector<bool> is_free;   // by slot: whether `free` has it (no search per release)
    uint64_t TakeFree() {
      const uint64_t slot = free.back();
      free.pop_back();
      is_free[slot] = false;
      return slot;
    }
    void PutFree(uint64_t slot) {
      free.push_back(slot);
      is_free[slot] = true;
    }
    void TakeFree(uint64_t slot) {  // `slot`, which is free
      free.erase(std::find(free.begin(), free.end(), slot));
      is_free[slot] = false;
    }
    struct Landing {
      uint64_t slot;
      bool done = false, failed = false;
      wire::Completion arrival;
    };
    // Landing or landed, in the order they took their slots.
    ReusedQueue<Landing> landing;
    uint64_t landing_base = 0;  // sequence of landing.front()
  };

  // Whether `receive` takes a message from `node`/`endpoint` with `tag`.
  static bool Accepts(const Pending& receive, uint64_t tag, absl::string_view node,
                      absl::string_view endpoint) {
    return receive.tag == tag &&
           (receive.source_endpoint.empty() ||
            (receive.source_endpoint == endpoint && receive.source_node == node));
  }
  // The same for `send`, from here or from another node.
  bool Accepts(const Pending& receive, const Pending& send) const {
    return send.incoming ? Accepts(receive, send.tag, send.incoming->node, send.incoming->from)
                         : Accepts(receive, send.tag, node_name_, send.from);
  }
  // Delivers `send` to `receive`, or fails both when it does not fit.
  void Meet(Pending& send, const Pending& receive);
  // Fails a waiting send: completes one from here, refuses one from a node.
  void FailSend(const Pending& send, const absl::Status& why);
  // Queues `send` for endpoint `to`, unless the receive area takes it.
  void Park(const std::string& to, Pending&& send);
  // Lands `send` in a free slot of its receiver's area, if one fits.
  bool TryArea(const std::string& to, const Pending& send);
  // Fails receives that name a sender on `node` for which `gone` holds.
  template <typename Gone>
  void FailReceivesFrom(absl::string_view node, const absl::Status& why, Gone gone);

  EndpointQueues& QueuesOf(const std::string& name) {
    return last_queues_.FindOrAdd(endpoints_, name);
  }

  const std::string node_name_;
  MatchSink& sink_;
  std::map<std::string, EndpointQueues> endpoints_;  // by receiving endpoint
  // endpoints_[name], the entry found last first: a send and its receive
  // name the same one.
  LastEntry<std::map<std::string, EndpointQueues>> last_queues_;
  absl::flat_hash_map<uint64_t, Area> areas_;  // by session
};

}  // namespace axon::daemon
