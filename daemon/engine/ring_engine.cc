#include "daemon/engine/ring_engine.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {
namespace {

absl::Status NoReceivePosted(absl::string_view to) {
  return absl::NotFoundError(absl::StrCat("endpoint ", to,
                                          " has no receive posted for this message (a reply "
                                          "whose caller gave up)"));
}

}  // namespace

RingEngine::~RingEngine() {
  for (auto& [id, session] : sessions_) loop_.UnwatchFdFromLoop(session->rings.daemon_bell.get());
  if (deadline_timer_.valid()) loop_.UnwatchFdFromLoop(deadline_timer_.get());
  if (host_copier_) loop_.UnwatchFdFromLoop(host_copier_->fd());
}

absl::Status RingEngine::StartCopyThreadsFromLoop(int threads, uint64_t min_bytes) {
  AXON_DCHECK_ON_LOOP();
  auto copier = HostCopier::Start(threads, min_bytes);
  if (!copier.ok()) return copier.status();
  HostCopier* raw = copier->get();
  if (auto st = loop_.WatchFdFromLoop(raw->fd(), [raw] { raw->RunFinished(); }); !st.ok()) {
    return st;
  }
  host_copier_ = *std::move(copier);
  return absl::OkStatus();
}

void RingEngine::AttachPeersFromLoop(PeerManager& peers, RemotePath::Limits limits) {
  AXON_DCHECK_ON_LOOP();
  remote_ = std::make_unique<RemotePath>(
      peers, copier_, limits,
      RemotePath::Hooks{
          .complete =
              [this](uint64_t session, uint64_t op_id, absl::Status status, uint64_t length,
                     uint64_t tag) {
                CompleteMessage(session, /*sent=*/true, op_id, std::move(status), length, tag);
              },
          .arrived = [this](const std::shared_ptr<Incoming>& m) { OnArrived(m); },
          .withdraw = [this](const std::string& node,
                             uint64_t message_id) { return Withdraw(node, message_id); },
          .node_down = [this](const std::string& node) { DropFromNode(node); },
      },
      sessions_manager_.ipc_mappings());
}

absl::Status RingEngine::AddSessionFromLoop(uint64_t id, SessionRings rings) {
  AXON_DCHECK_ON_LOOP();
  const size_t ring_bytes = ring::RingBytes(wire::kRingSlots, wire::kRingSlotSize);
  if (!rings.memory || rings.memory->length() < 2 * ring_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("the rings need ", 2 * ring_bytes, " bytes"));
  }
  auto submissions = ring::SpscRing::Attach(rings.memory->data(), ring_bytes, wire::kRingSlots,
                                            wire::kRingSlotSize);
  auto completions = ring::SpscRing::Attach(rings.memory->data() + ring_bytes, ring_bytes,
                                            wire::kRingSlots, wire::kRingSlotSize);
  if (!submissions.ok()) return submissions.status();
  if (!completions.ok()) return completions.status();
  if (sessions_.count(id) != 0) return absl::AlreadyExistsError("the session has rings already");
  const int bell = rings.daemon_bell.get();
  auto session = std::make_unique<Session>(
      Session{std::move(rings), *std::move(submissions), *std::move(completions), {}});
  if (auto st = loop_.WatchFdFromLoop(bell,
                                      [this, bell] {
                                        uint64_t count;
                                        while (::read(bell, &count, sizeof(count)) > 0) {
                                        }
                                      });
      !st.ok()) {
    return st;
  }
  sessions_[id] = std::move(session);
  return absl::OkStatus();
}

void RingEngine::RemoveSessionFromLoop(uint64_t id) {
  AXON_DCHECK_ON_LOOP();
  auto it = sessions_.find(id);
  if (it != sessions_.end()) {
    loop_.UnwatchFdFromLoop(it->second->rings.daemon_bell.get());
    sessions_.erase(it);
  }
  // Its own operations go with it (nobody is left to tell) ...
  for (auto& [name, queues] : endpoints_) {
    for (auto* q : {&queues.receives, &queues.sends}) {
      q->remove_if([id](const Pending& p) { return !p.incoming && p.session == id; });
    }
  }
  if (remote_) remote_->DropSessionFromLoop(id);
  // ... and sends others made to its endpoints fail.
  FailOrphanedSends();
}

std::optional<uint64_t> RingEngine::Owner(absl::string_view endpoint) {
  const uint64_t generation = sessions_manager_.endpoint_generation();
  if (generation != owners_generation_) {
    owners_.clear();
    owners_generation_ = generation;
    last_owner_ = {};
  }
  // Most submissions and arrivals name the endpoint of the one before.
  if (last_owner_.second != 0 && endpoint == last_owner_.first) return last_owner_.second;
  if (auto it = owners_.find(endpoint); it != owners_.end()) {
    last_owner_ = {it->first, it->second};
    return it->second;
  }
  std::string name(endpoint);
  auto owner = sessions_manager_.EndpointOwner(name);
  if (owner) owners_.emplace(std::move(name), *owner);
  return owner;
}

void RingEngine::FailReceivesFrom(absl::string_view node, const absl::Status& why,
                                  const std::function<bool(absl::string_view)>& gone) {
  for (auto& [name, queues] : endpoints_) {
    queues.receives.remove_if([&](const Pending& r) {
      if (r.source_endpoint.empty() || r.source_node != node || !gone(r.source_endpoint)) {
        return false;
      }
      Complete(
          r.session, r.op_id,
          absl::Status(why.code(), absl::StrCat(why.message(), " (the sender ", r.source_node, "/",
                                                r.source_endpoint, " this receive waited for)")));
      return true;
    });
  }
}

void RingEngine::FailOrphanedSends() {
  // Receives waiting for a message from an endpoint here that went away.
  FailReceivesFrom(node_name_, absl::UnavailableError("the sending endpoint went away"),
                   [this](absl::string_view endpoint) { return !Owner(endpoint).has_value(); });
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    if (!sessions_manager_.EndpointOwner(it->first)) {
      const absl::Status gone =
          absl::UnavailableError("the receiving endpoint " + it->first + " went away");
      it->second.sends.for_each([&](const Pending& send) {
        if (send.incoming) {
          remote_->RefuseFromLoop(*send.incoming, gone);
        } else {
          Complete(send.session, send.op_id, gone);
        }
      });
      last_queues_.Forget();
      it = endpoints_.erase(it);
    } else {
      ++it;
    }
  }
}

ucx::Polled RingEngine::PollFromLoop() {
  AXON_DCHECK_ON_LOOP();
  bool did_work = copier_.busy() && copier_.Poll();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (Serve(it->first, *it->second, did_work)) {
      ++it;
    } else {
      loop_.UnwatchFdFromLoop(it->second->rings.daemon_bell.get());
      it = sessions_.erase(it);
    }
  }
  // What this poll completed, for every session (a local send completes
  // the receiver's operation too). A ring found corrupt here closes at the
  // next poll.
  for (auto& [id, session] : sessions_) {
    if (!session->backlog_empty() || session->unrung) Flush(*session);
  }
  if (remote_) remote_->FlushAcksFromLoop();
  // Busy: keep polling a little after the last entry instead of sleeping.
  // The clock is read only on idle polls (it showed in profiles).
  if (did_work) {
    just_worked_ = true;
    return ucx::Polled::kWork;
  }
  // GPU copies in flight: nothing wakes the loop for them.
  if (copier_.busy()) return ucx::Polled::kSpin;
  if (sessions_.empty()) return ucx::Polled::kIdle;
  // Idle polls between bursts are many: read the clock on every 32nd.
  if (!just_worked_ && ++idle_polls_ % 32 != 0) return ucx::Polled::kSpin;
  const absl::Time now = absl::Now();
  if (just_worked_) {
    just_worked_ = false;
    last_work_ = now;
  }
  return now - last_work_ < kSpin ? ucx::Polled::kSpin : ucx::Polled::kIdle;
}

bool RingEngine::PrepareToSleepFromLoop() {
  AXON_DCHECK_ON_LOOP();
  if (copier_.busy()) return false;  // GPU copies wake nobody: poll them
  if (remote_ && remote_->acks_pending()) return false;
  for (auto& [id, session] : sessions_) {
    if (!session->backlog_empty() || session->unrung || !session->submissions.PrepareToSleep()) {
      return false;
    }
  }
  return true;
}

bool RingEngine::Serve(uint64_t id, Session& session, bool& did_work) {
  session.submissions.Awake();  // whatever woke the loop, this side is awake
  if (!Flush(session))
    return !session.broken;  // the client is behind: no new work until it catches up
  // Per-poll scratch on the stack: this runs every loop iteration while busy.
  std::array<uint8_t, wire::kRingSlotSize> entry;
  while (true) {
    auto n = session.submissions.TryPop(absl::MakeSpan(entry));
    if (!n.ok()) {
      spdlog::warn("session {}: closing its rings: {}", id, n.status().message());
      return false;
    }
    if (*n < 0) break;
    did_work = true;
    ++session.traffic.in_flight;  // every entry gets exactly one completion
    auto submission = wire::ReadEntry<wire::Submission>(absl::MakeConstSpan(entry).subspan(0, *n));
    if (!submission) {
      Complete(session, {.code = static_cast<uint32_t>(absl::StatusCode::kInvalidArgument)});
      continue;
    }
    Sample(session, *submission);
    if (session.traffic.in_flight > max_in_flight_) {
      Complete(id, submission->op_id,
               absl::ResourceExhaustedError(
                   absl::StrCat("the session has ", max_in_flight_,
                                " operations in flight already (sessions.max_in_flight)")));
      continue;
    }
    Handle(id, session, *submission);
  }
  if (session.broken) spdlog::warn("session {}: closing its rings: completion ring corrupt", id);
  return !session.broken;
}

void RingEngine::Handle(uint64_t id, Session& session, const wire::Submission& submission) {
  switch (static_cast<wire::RingOp>(submission.op)) {
    case wire::RingOp::kNop:
      Complete(session, {.op_id = submission.op_id});
      return;
    case wire::RingOp::kCancel:
      if (Abort(id, submission.region, absl::CancelledError("cancelled by the client"))) {
        Complete(id, submission.op_id, absl::OkStatus());
      } else {
        Complete(id, submission.op_id,
                 absl::NotFoundError(absl::StrCat("operation ", submission.region,
                                                  " is not pending (it finished, or never was)")));
      }
      return;
    case wire::RingOp::kSetArea:
      SetArea(id, session, submission);
      return;
    case wire::RingOp::kRelease:
      Release(id, session, submission);
      return;
    case wire::RingOp::kClaim:
      Claim(id, session, submission);
      return;
    case wire::RingOp::kSend: {
      if (submission.flags & wire::kSubmissionMore) {
        GatherPart(id, session, submission);
        return;
      }
      auto send = Prepare(id, session, submission);
      if (!session.gathering.empty() || !session.gather_error.ok()) {
        // The last part of a gather send: the parts so far go in front.
        const absl::Status failed = std::exchange(session.gather_error, absl::OkStatus());
        PartList parts = std::exchange(session.gathering, {});
        if (!send.ok()) break;
        if (!failed.ok()) {
          Complete(id, submission.op_id, failed);
          return;
        }
        // The first part leads; the rest and the last submission follow it.
        Part first = std::move(parts.front());
        parts.erase(parts.begin());
        parts.push_back({std::move(send->region), send->offset, send->length});
        send->region = std::move(first.region);
        send->offset = first.offset;
        send->length = first.length;
        for (const Part& p : parts) send->length += p.length;
        send->more = std::move(parts);
      }
      if (!send.ok()) break;
      if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
      absl::string_view address = wire::NameView(submission.peer);
      if (const size_t slash = address.find('/'); slash != absl::string_view::npos) {
        const absl::string_view node = address.substr(0, slash);
        address.remove_prefix(slash + 1);
        if (node != node_name_) {
          SendRemote(id, *std::move(send), node, address);
          return;
        }
      }
      const std::string to(address);
      if (!Owner(to)) {
        Complete(id, submission.op_id,
                 absl::NotFoundError("no endpoint '" + to + "' on node " + node_name_));
        return;
      }
      EndpointQueues& queues = QueuesOf(to);
      auto receive =
          queues.receives.TakeFirst(send->tag, [&](const Pending& r) { return Accepts(r, *send); });
      if (!receive) {
        if (send->tag & wire::kPostedOnlyTagBit) {
          Complete(id, submission.op_id, NoReceivePosted(to));
          return;
        }
        Park(to, *std::move(send));
        return;
      }
      Deliver(*send, *receive);
      return;
    }
    case wire::RingOp::kPostRecv: {
      auto receive = Prepare(id, session, submission);
      if (!receive.ok()) break;
      if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
      if (absl::string_view source = wire::NameView(submission.peer); !source.empty()) {
        const size_t slash = source.find('/');
        receive->source_node =
            slash == absl::string_view::npos ? node_name_ : std::string(source.substr(0, slash));
        receive->source_endpoint =
            std::string(slash == absl::string_view::npos ? source : source.substr(slash + 1));
      }
      EndpointQueues& queues = QueuesOf(receive->from);  // the receiving endpoint
      auto send = queues.sends.TakeFirst(receive->tag,
                                         [&](const Pending& s) { return Accepts(*receive, s); });
      if (!send) {
        queues.receives.push_back(*std::move(receive));
        return;
      }
      Deliver(*send, *receive);
      if (send->incoming) remote_->Recycle(std::move(send->incoming));
      return;
    }
  }
  if (submission.op < static_cast<uint16_t>(wire::RingOp::kNop) ||
      submission.op > static_cast<uint16_t>(wire::RingOp::kClaim)) {
    Complete(id, submission.op_id,
             absl::InvalidArgumentError("unknown operation " + std::to_string(submission.op)));
  }
}

absl::StatusOr<RingEngine::Pending> RingEngine::Prepare(uint64_t id, Session& session,
                                                        const wire::Submission& submission) {
  auto fail = [&](absl::Status status) {
    Complete(id, submission.op_id, status);
    return status;
  };
  const absl::string_view endpoint = wire::NameView(submission.endpoint);
  if (Owner(endpoint) != id) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("endpoint '", endpoint, "' is not bound by this session")));
  }
  auto part = FindPart(id, session, submission.region, submission.offset, submission.length);
  if (!part.ok()) return fail(part.status());
  return Pending{.session = id,
                 .op_id = submission.op_id,
                 .region = std::move(part->region),
                 .offset = submission.offset,
                 .length = submission.length,
                 .tag = submission.tag,
                 .from = std::string(endpoint)};  // sends: the full address only when needed
}

void RingEngine::SendRemote(uint64_t id, Pending&& send, absl::string_view node,
                            absl::string_view to) {
  if (!remote_) {
    Complete(id, send.op_id,
             absl::FailedPreconditionError(
                 absl::StrCat("node ", node_name_,
                              " has no peer plane (peers.listen is empty), so it cannot "
                              "reach node ",
                              node)));
    return;
  }
  if (to.empty() || to.size() > wire::kMaxEndpointName) {
    Complete(id, send.op_id,
             absl::InvalidArgumentError(absl::StrCat("bad destination endpoint name '", to, "'")));
    return;
  }
  remote_->SendFromLoop(Outgoing{.session = id,
                                 .op_id = send.op_id,
                                 .node = std::string(node),
                                 .from = std::move(send.from),
                                 .to = std::string(to),
                                 .tag = send.tag,
                                 .region = std::move(send.region),
                                 .offset = send.offset,
                                 .length = send.length,
                                 .more = std::move(send.more)});
}

void RingEngine::OnArrived(const std::shared_ptr<Incoming>& message) {
  if (!Owner(message->to)) {
    remote_->RefuseFromLoop(
        *message, absl::NotFoundError("no endpoint '" + message->to + "' on node " + node_name_));
    return;
  }
  const std::string& to = message->to;  // `message` keeps it
  EndpointQueues& queues = QueuesOf(to);
  auto receive = queues.receives.TakeFirst(message->tag, [&](const Pending& r) {
    return Accepts(r, message->tag, message->node, message->from);
  });
  if (!receive) {
    if (message->tag & wire::kPostedOnlyTagBit) {
      remote_->RefuseFromLoop(*message, NoReceivePosted(to));
      return;
    }
    // Parked: it keeps the message (the remote path recycles only those
    // nobody kept), and is kept in order by its source.
    Park(to, Pending{.length = message->length(), .tag = message->tag, .incoming = message});
    return;
  }
  DeliverIncoming(message, *receive);
}

bool RingEngine::Withdraw(const std::string& node, uint64_t message_id) {
  for (auto& [name, queues] : endpoints_) {
    if (queues.sends.TakeFirstIf([&](const Pending& p) {
          return p.incoming && p.incoming->node == node && p.incoming->message_id == message_id;
        })) {
      return true;
    }
  }
  return false;
}

void RingEngine::DropFromNode(const std::string& node) {
  for (auto& [name, queues] : endpoints_) {
    queues.sends.remove_if(
        [&](const Pending& p) { return p.incoming && p.incoming->node == node; });
  }
  FailReceivesFrom(node, absl::UnavailableError("node " + node + " is down"),
                   [](absl::string_view) { return true; });
}

void RingEngine::CopyOut(const Pending& send, uint8_t* into) {
  if (send.more.empty()) {  // the common case, on the hot path: no list of spans
    if (send.length > 0) std::memcpy(into, send.region->data() + send.offset, send.length);
    return;
  }
  for (absl::Span<const uint8_t> s : PartSpans(*send.region, send.offset, send.length, send.more)) {
    if (!s.empty()) std::memcpy(into, s.data(), s.size());
    into += s.size();
  }
}

void RingEngine::GatherPart(uint64_t id, Session& session, const wire::Submission& submission) {
  --session.traffic.in_flight;  // a part gets no completion; the whole send does
  if (!session.gather_error.ok()) return;
  if (session.gathering.size() + 1 >= wire::kMaxSendParts) {
    session.gather_error = absl::InvalidArgumentError(
        absl::StrCat("a send has at most ", wire::kMaxSendParts, " parts"));
    return;
  }
  auto part = FindPart(id, session, submission.region, submission.offset, submission.length);
  if (!part.ok()) {
    session.gather_error = part.status();
    return;
  }
  session.gathering.push_back(*std::move(part));
}

absl::StatusOr<Part> RingEngine::FindPart(uint64_t id, Session& session, uint64_t region,
                                          uint64_t offset, uint64_t length) {
  const uint64_t generation = sessions_manager_.region_generation();
  if (generation != session.regions_seen) {
    session.regions.clear();
    session.regions_seen = generation;
  }
  std::shared_ptr<Region> r;
  if (auto it = session.regions.find(region); it != session.regions.end()) r = it->second.lock();
  if (!r) {
    r = sessions_manager_.FindRegion(id, region);
    if (!r) return absl::InvalidArgumentError("unknown region " + std::to_string(region));
    session.regions[region] = r;
  }
  if (offset > r->length() || length > r->length() - offset) {
    return absl::InvalidArgumentError(absl::StrCat("bytes [", offset, ", +", length,
                                                   ") lie outside region ", region, " of ",
                                                   r->length(), " bytes"));
  }
  return Part{std::move(r), offset, length};
}

void RingEngine::DeliverIncoming(const std::shared_ptr<Incoming>& message, const Pending& receive) {
  const uint64_t length = message->length();
  if (length > receive.length) {
    const absl::Status no_room = absl::ResourceExhaustedError(
        absl::StrCat("a message of ", length, " bytes for a buffer of ", receive.length));
    remote_->RefuseFromLoop(*message, no_room);
    Complete(receive.session, receive.op_id, no_room);
    return;
  }
  uint8_t* into = receive.region->data() + receive.offset;
  auto landed = [this, session = receive.session, op_id = receive.op_id, length,
                 tag = message->tag](absl::Status st) {
    CompleteMessage(session, /*sent=*/false, op_id, std::move(st), length, tag);
  };
  if (remote_->LandNowFromLoop(*message, *receive.region, into)) {
    landed(absl::OkStatus());  // no std::function on the common path
    return;
  }
  remote_->LandFromLoop(message, receive.region, into, std::move(landed));
}

void RingEngine::Deliver(const Pending& send, const Pending& receive) {
  if (send.incoming) {
    DeliverIncoming(send.incoming, receive);
    return;
  }
  if (send.length > receive.length) {
    const absl::Status no_room = absl::ResourceExhaustedError(
        absl::StrCat("a message of ", send.length, " bytes for a buffer of ", receive.length));
    Complete(send.session, send.op_id, no_room);
    Complete(receive.session, receive.op_id, no_room);
    return;
  }
  uint8_t* into = receive.region->data() + receive.offset;
  if (CopyLocalNow(send, *receive.region, into)) {
    CompleteMessage(send.session, /*sent=*/true, send.op_id, absl::OkStatus(), send.length,
                    send.tag);
    CompleteMessage(receive.session, /*sent=*/false, receive.op_id, absl::OkStatus(), send.length,
                    send.tag);
    return;
  }
  CopyLocal(send, receive.region, into,
            [this, from = send.session, send_op = send.op_id, to = receive.session,
             receive_op = receive.op_id, length = send.length, tag = send.tag](absl::Status st) {
              CompleteMessage(from, /*sent=*/true, send_op, st, length, tag);
              CompleteMessage(to, /*sent=*/false, receive_op, st, length, tag);
            });
}

bool RingEngine::CopyLocalNow(const Pending& send, const Region& to, uint8_t* into) {
  if (send.region->on_gpu() || to.on_gpu() || GpuDevice(*send.region, send.more) >= 0 ||
      (host_copier_ && host_copier_->Takes(send.length))) {
    return false;
  }
  CopyOut(send, into);
  return true;
}

void RingEngine::CopyLocal(const Pending& send, const std::shared_ptr<Region>& to, uint8_t* into,
                           absl::AnyInvocable<void(absl::Status)> done) {
  // The source's device; the target's when only the target is on a GPU.
  const int source = send.region->on_gpu() ? send.region->device() : -1;
  const int device = source >= 0    ? source
                     : to->on_gpu() ? to->device()
                                    : GpuDevice(*send.region, send.more);
  if (device < 0) {  // host to host
    if (host_copier_ && host_copier_->Takes(send.length)) {
      std::vector<std::shared_ptr<Region>> keep{to, send.region};
      for (const Part& p : send.more) keep.push_back(p.region);
      host_copier_->Copy(PartSpans(*send.region, send.offset, send.length, send.more), into,
                         std::move(keep), std::move(done));
      return;
    }
    CopyOut(send, into);
    done(absl::OkStatus());
    return;
  }
  // The GPU copies it: host pages pinned once, then one async copy per
  // part on the source's device (a peer copy when the target is another GPU).
  auto keep = std::make_shared<std::vector<std::shared_ptr<Region>>>();
  keep->push_back(to);
  keep->push_back(send.region);
  for (const Part& p : send.more) keep->push_back(p.region);
  if (auto st =
          CopyOnGpu(copier_, device, PartSpans(*send.region, send.offset, send.length, send.more),
                    *to, into, *keep);
      !st.ok()) {
    done(std::move(st));
    return;
  }
  copier_.Then(device, [keep, done = std::move(done)](absl::Status result) mutable {
    done(std::move(result));
  });
}

}  // namespace axon::daemon
