// RingEngine, part: hops between engine shards (EngineShards). A session's
// ring is served by one shard; an endpoint's messages are matched by the
// shard of the session that bound it. So:
// - a send to another shard's endpoint is matched there (Router::Elsewhere),
//   and its completion comes back to the sender's shard;
// - a send to another node goes to shard 0, which holds the remote path;
// - a message from another node for another shard's endpoint goes there as a
//   stand-in: the message itself, and what UCX holds of it, stays on shard 0,
//   which lands it when the owner's shard has matched it;
// - a cancel or a deadline aborts the operation wherever it waits;
// - a closed session, a withdrawn message or a node that went down is
//   forgotten on every shard.
// Every hop goes into the target shard's mailbox, so hops from one shard to
// another arrive in the order they were made: gathered per target during a
// poll and put there at its end (one lock per target and poll, not per
// message, which showed in profiles as contention), taken by the target at
// the start of its next poll.
#include <atomic>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/engine/shards.h"

namespace axon::daemon {

bool RingEngine::Here(uint64_t id) const {
  return shards_ == nullptr || shards_->ShardOf(id) == index_;
}

void RingEngine::Hand(size_t shard, Hop hop) {
  if (closing_) return;  // shutdown: the other shards are going too
  outbox_[shard].push_back(std::move(hop));
  outbox_full_ = true;
}

void RingEngine::SendHops() {
  if (!outbox_full_) return;
  outbox_full_ = false;
  for (size_t i = 0; i < outbox_.size(); ++i) {
    if (outbox_[i].empty()) continue;
    shards_->engine(i).mail_.PutAll(outbox_[i]);
    shards_->loop(i).Nudge();
  }
}

template <typename Fn>
void RingEngine::OnShard(size_t shard, Fn fn) {
  Hand(shard, absl::AnyInvocable<void(RingEngine&)>(std::move(fn)));
}

bool RingEngine::TakeHops() {
  mail_.TakeAll(hops_);
  for (Hop& hop : hops_) {
    if (auto* send = std::get_if<SendHop>(&hop)) {
      matcher_.Send(std::move(send->send), send->to);
    } else if (auto* done = std::get_if<DoneHop>(&hop)) {
      if (done->sent) {
        if (*done->sent) SentThroughShard0(done->session, done->op_id);
        CompleteMessage(done->session, *done->sent, done->op_id, std::move(done->status),
                        done->length, done->tag, done->quiet);
      } else {
        Complete(done->session, done->op_id, std::move(done->status), done->length, done->tag);
      }
    } else if (auto* remote = std::get_if<RemoteHop>(&hop)) {
      remote_->SendFromLoop(std::move(remote->send));
    } else if (auto* land = std::get_if<LandHop>(&hop)) {
      LandHanded(land->key, std::move(land->region), land->into,
                 [this, landing = land->landing](absl::Status st) {
                   Hand(TaggedShard(landing), LandedHop{landing, std::move(st)});
                 });
    } else if (auto* landed = std::get_if<LandedHop>(&hop)) {
      auto it = landings_.find(landed->landing);
      if (it != landings_.end()) {
        auto then = std::move(it->second);
        landings_.erase(it);
        then(std::move(landed->status));
      }
    } else {
      std::move(std::get<absl::AnyInvocable<void(RingEngine&)>>(hop))(*this);
    }
  }
  const bool any = !hops_.empty();
  hops_.clear();  // what they held goes here, on this thread
  return any;
}

void RingEngine::OnRemoteShard(absl::AnyInvocable<void(RingEngine&)> fn) {
  if (shards_ == nullptr || index_ == 0) {
    fn(*this);
    return;
  }
  OnShard(0, std::move(fn));
}

template <typename Fn>
void RingEngine::OnOthers(Fn fn) {
  if (shards_ == nullptr) return;
  for (size_t i = 0; i < shards_->size(); ++i) {
    if (i != index_) OnShard(i, fn);
  }
}

void RingEngine::JoinFromLoop(EngineShards& shards, size_t index) {
  AXON_DCHECK_ON_LOOP();
  shards_ = &shards;
  index_ = index;
  outbox_.resize(shards.size());
  router_.SetElsewhere([this](uint64_t session) { return Here(session); },
                       [this](Pending&& send, std::string to, uint64_t owner) {
                         Hand(shards_->ShardOf(owner), SendHop{std::move(send), std::move(to)});
                       });
  // Shard 0 has the remote path, if this daemon has a peer plane. A shard
  // with links of its own sends messages on them to the nodes it chose to
  // (ShardPeers::OwnRouteFromLoop); one-sided transfers stay on shard 0.
  if (index != 0 && shard_peers_ != nullptr) {
    router_.SetRemote([this](Outgoing&& send) {
      if (send.window.op != wire::WindowFrame::kNone) {
        Hand(0, RemoteHop{std::move(send)});
        return;
      }
      // The shard's own link only once nothing of this shard's waits on
      // shard 0 for the node (a connection on first use carries its waiting
      // sends over to the next one): else a message could overtake them.
      const auto none_there = [&] { return !at_shard0_count_.contains(send.node); };
      if (shard_peers_->OwnRouteFromLoop(send.node, none_there)) {
        remote_->SendFromLoop(std::move(send));
        return;
      }
      at_shard0_.emplace(std::pair{send.session, send.op_id}, send.node);
      ++at_shard0_count_[send.node];
      Hand(0, RemoteHop{std::move(send)});
    });
  } else if (index != 0 && shards.engine(0).remote_) {
    router_.SetRemote([this](Outgoing&& send) { Hand(0, RemoteHop{std::move(send)}); });
  }
}

void RingEngine::SentThroughShard0(uint64_t session, uint64_t op_id) {
  auto it = at_shard0_.find(std::pair{session, op_id});
  if (it == at_shard0_.end()) return;
  LeftShard0(it->second);
  at_shard0_.erase(it);
}

void RingEngine::LeftShard0(const std::string& node) {
  if (auto count = at_shard0_count_.find(node);
      count != at_shard0_count_.end() && --count->second == 0) {
    at_shard0_count_.erase(count);
  }
}

void RingEngine::ForgetSession(uint64_t id) {
  absl::erase_if(at_shard0_, [this, id](const auto& sent) {
    if (sent.first.first != id) return false;
    LeftShard0(sent.second);
    return true;
  });
  absl::erase_if(window_ops_, [id](const auto& op) { return op.first.first == id; });
  absl::erase_if(read_targets_, [id](const auto& read) { return read.second.session == id; });
  matcher_.SessionClosed(id);
  if (remote_) remote_->DropSessionFromLoop(id);
}

void RingEngine::ForgetSessionElsewhere(uint64_t id) {
  // After every hop this shard made for it, so none comes back to life there.
  OnOthers([id](RingEngine& e) { e.ForgetSession(id); });
}

void RingEngine::AbortAnywhere(uint64_t id, uint64_t op_id, const absl::Status& why,
                               absl::AnyInvocable<void(RingEngine&, bool)> answer) {
  const bool found = Abort(id, op_id, why);
  if (found || shards_ == nullptr || closing_) {
    if (answer) answer(*this, found);
    return;
  }
  // Another shard may hold it (a send matched there, or sent to another
  // node from shard 0): ask them all; the last to answer tells this one.
  struct Asked {
    std::atomic<size_t> left;
    std::atomic<bool> found{false};
    absl::AnyInvocable<void(RingEngine&, bool)> answer;
    size_t back;
  };
  auto asked = std::make_shared<Asked>();
  asked->left = shards_->size() - 1;
  asked->answer = std::move(answer);
  asked->back = index_;
  OnOthers([asked, id, op_id, why](RingEngine& e) {
    if (e.Abort(id, op_id, why)) asked->found = true;
    if (asked->left.fetch_sub(1) == 1 && asked->answer) {
      e.OnShard(asked->back, [asked](RingEngine& origin) {
        std::move(asked->answer)(origin, asked->found.load());
      });
    }
  });
}

void RingEngine::HopCompletion(uint64_t id, std::optional<bool> sent, uint64_t op_id,
                               absl::Status status, uint64_t length, uint64_t tag, bool quiet) {
  if (Here(id)) return;  // a session of this shard that closed: nobody to tell
  Hand(shards_->ShardOf(id), DoneHop{id, op_id, std::move(status), length, tag, sent, quiet});
}

void RingEngine::Arrive(const std::shared_ptr<Incoming>& message) {
  if (message->window.op != wire::WindowFrame::kNone) {  // for a window, not an endpoint
    WindowArrive(message);
    return;
  }
  if (shards_ != nullptr) {
    if (std::optional<uint64_t> owner = Owner(message->to); owner && !Here(*owner)) {
      HandOver(message, shards_->ShardOf(*owner));
      return;
    }
  }
  matcher_.Arrive(message);
}

void RingEngine::HandOver(const std::shared_ptr<Incoming>& message, size_t shard) {
  const uint64_t key = ++next_handed_;
  handed_[key] = Handed{message, shard};
  auto stand_in = std::make_shared<Incoming>();
  stand_in->node = message->node;
  stand_in->generation = message->generation;
  stand_in->message_id = message->message_id;
  stand_in->tag = message->tag;
  stand_in->from = message->from;
  stand_in->to = message->to;
  stand_in->bytes = message->bytes;
  stand_in->total = message->total;
  stand_in->chunked = message->chunked;
  stand_in->offset = message->offset;
  stand_in->first_id = message->first_id;
  stand_in->handed = key;
  stand_in->handed_by = index_;
  OnShard(shard, [stand_in = std::move(stand_in)](RingEngine& e) { e.matcher_.Arrive(stand_in); });
}

void RingEngine::LandElsewhere(const Incoming& stand_in, std::shared_ptr<Region> region,
                               uint8_t* into, absl::AnyInvocable<void(absl::Status)> landed) {
  const uint64_t landing = Tagged(++next_landing_);
  landings_.emplace(landing, std::move(landed));
  Hand(stand_in.handed_by, LandHop{stand_in.handed, std::move(region), into, landing});
}

void RingEngine::LandHanded(uint64_t key, std::shared_ptr<Region> region, uint8_t* into,
                            absl::AnyInvocable<void(absl::Status)> done) {
  auto it = handed_.find(key);
  if (it == handed_.end()) {
    done(absl::UnavailableError(
        "the message went before it landed (its node went down, or its sender withdrew it)"));
    return;
  }
  std::shared_ptr<Incoming> message = std::move(it->second.message);
  handed_.erase(it);
  if (remote_->LandNowFromLoop(*message, *region, into)) {
    done(absl::OkStatus());
  } else {
    auto shared = std::make_shared<absl::AnyInvocable<void(absl::Status)>>(std::move(done));
    remote_->LandFromLoop(message, std::move(region), into,
                          [shared](absl::Status st) { (*shared)(std::move(st)); });
  }
  remote_->Recycle(std::move(message));
}

void RingEngine::Refuse(const Incoming& message, const absl::Status& why) {
  if (message.handed == 0) {
    remote_->RefuseFromLoop(message, why);
    return;
  }
  OnShard(message.handed_by,
          [key = message.handed, why](RingEngine& e) { e.RefuseHanded(key, why); });
}

void RingEngine::RefuseHanded(uint64_t key, const absl::Status& why) {
  auto it = handed_.find(key);
  if (it == handed_.end()) return;  // gone with its node, or withdrawn
  std::shared_ptr<Incoming> message = std::move(it->second.message);
  handed_.erase(it);
  remote_->RefuseFromLoop(*message, why);
}

bool RingEngine::Withdraw(const std::string& node, uint64_t message_id) {
  if (matcher_.Withdraw(node, message_id)) return true;
  for (const auto& [key, h] : handed_) {
    if (h.message->message_id != message_id || h.message->node != node) continue;
    // Waiting on another shard, maybe: taken out there, it is answered from
    // here, as one withdrawn here would be at once.
    OnShard(h.shard, [node, message_id, key = key, back = index_](RingEngine& e) {
      if (!e.matcher_.Withdraw(node, message_id)) return;  // landing: its ack is on its way
      e.OnShard(back, [key](RingEngine& origin) {
        origin.RefuseHanded(key, absl::CancelledError("the sender withdrew the message"));
      });
    });
    return false;
  }
  return false;
}

void RingEngine::NodeDown(const std::string& node) {
  matcher_.NodeDown(node);
  absl::erase_if(handed_,
                 [&node](const auto& entry) { return entry.second.message->node == node; });
  // Shard 0's word goes to every shard. A shard's own link going down says
  // nothing of the others': late, it would drop what a new connection
  // brought them (its stand-ins there fail when matched: the message is
  // gone from here).
  if (shard_peers_ == nullptr) OnOthers([node](RingEngine& e) { e.matcher_.NodeDown(node); });
}

}  // namespace axon::daemon
