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

RingEngine::RingEngine(ucx::Loop& loop, SessionManager& sessions, std::string node_name,
                       uint64_t max_in_flight)
    : loop_(loop),
      sessions_manager_(sessions),
      node_name_(std::move(node_name)),
      max_in_flight_(max_in_flight),
      matcher_(node_name_, *this),
      router_(node_name_, matcher_, *this) {
  AXON_DCHECK_ON_LOOP();
  // Made at start, not with the first deadline: TSan does not see a timerfd
  // made, and took one that reused a socket's number for a race with the
  // thread that had accepted that socket.
  deadline_timer_.Reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!deadline_timer_.valid() ||
      !loop_.WatchFdFromLoop(deadline_timer_.get(), [this] { OnDeadlineTimer(); }).ok()) {
    spdlog::error("deadlines: no timer ({}); they fire only when the engine is busy",
                  std::strerror(errno));
    deadline_timer_.Reset();
  }
}

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

void RingEngine::AttachPeersFromLoop(PeerPlane& peers, RemotePath::Limits limits) {
  AXON_DCHECK_ON_LOOP();
  remote_ = std::make_unique<RemotePath>(
      peers, copier_, limits,
      RemotePath::Hooks{
          .complete =
              [this](uint64_t session, uint64_t op_id, absl::Status status, uint64_t length,
                     uint64_t tag, bool quiet) {
                CompleteMessage(session, /*sent=*/true, op_id, std::move(status), length, tag,
                                quiet);
              },
          .arrived = [this](const std::shared_ptr<Incoming>& m) { Arrive(m); },
          .withdraw = [this](const std::string& node,
                             uint64_t message_id) { return Withdraw(node, message_id); },
          .node_down = [this](const std::string& node) { NodeDown(node); },
      },
      sessions_manager_.ipc_mappings());
  router_.SetRemote(
      [remote = remote_.get()](Outgoing&& send) { remote->SendFromLoop(std::move(send)); });
}

void RingEngine::AttachShardPeersFromLoop(std::unique_ptr<ShardPeers> peers,
                                          RemotePath::Limits limits) {
  AXON_DCHECK_ON_LOOP();
  shard_peers_ = std::move(peers);
  AttachPeersFromLoop(*shard_peers_, limits);  // JoinFromLoop sets the route
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
      Session{id, std::move(rings), *std::move(submissions), *std::move(completions), {}});
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
  // Its own operations go with it (nobody is left to tell), and what others
  // wait for from or at its endpoints fails.
  deadlines_.SessionClosed(id);
  ForgetSession(id);
  ForgetSessionElsewhere(id);
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

ucx::Polled RingEngine::PollFromLoop() {
  AXON_DCHECK_ON_LOOP();
  poll_clock_read_ = false;
  bool did_work = copier_.busy() && copier_.Poll();
  if (mail_.maybe_full() && TakeHops()) did_work = true;
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
  // What this turn handed other shards, from the rings, from UCX callbacks
  // or timers before it.
  SendHops();
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
  if (mail_.maybe_full()) return false;  // after the loop said it sleeps: see Mailbox
  if (outbox_full_) return false;
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
    ++session.traffic.in_flight;  // until its completion (or a quiet send's success)
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
      AbortAnywhere(
          id, submission.target, absl::CancelledError("cancelled by the client"),
          [id, op_id = submission.op_id, target = submission.target](RingEngine& e, bool found) {
            e.Complete(
                id, op_id,
                found ? absl::OkStatus()
                      : absl::NotFoundError(absl::StrCat(
                            "operation ", target, " is not pending (it finished, or never was)")));
          });
      return;
    case wire::RingOp::kSetArea:
      SetArea(id, submission);
      return;
    case wire::RingOp::kRelease:
      --session.traffic.in_flight;  // no completion: nothing the client could act on
      matcher_.Release(id, submission.slot);
      return;
    case wire::RingOp::kClaim:
      --session.traffic.in_flight;  // no completion, as for a release
      matcher_.Claim(id, submission.slot);
      return;
    case wire::RingOp::kSend: {
      if (submission.flags & wire::kSubmissionMore) {
        GatherPart(id, session, submission);
        return;
      }
      Pending send;
      const bool prepared = Prepare(id, session, submission, send);
      if (!session.gathering.empty() || !session.gather_error.ok()) {
        // The last part of a gather send: the parts so far go in front.
        const absl::Status failed = std::exchange(session.gather_error, absl::OkStatus());
        PartList parts = std::exchange(session.gathering, {});
        if (!prepared) break;
        if (!failed.ok()) {
          Complete(id, submission.op_id, failed);
          return;
        }
        // The first part leads; the rest and the last submission follow it.
        Part first = std::move(parts.front());
        parts.erase(parts.begin());
        parts.push_back({std::move(send.region), send.offset, send.length});
        send.region = std::move(first.region);
        send.offset = first.offset;
        send.length = first.length;
        for (const Part& p : parts) send.length += p.length;
        send.more = std::move(parts);
      }
      if (!prepared) break;
      send.quiet = (submission.flags & wire::kSubmissionQuiet) != 0;
      if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
      router_.Send(std::move(send), wire::NameView(submission.peer));
      return;
    }
    case wire::RingOp::kPostRecv: {
      Pending receive;
      if (!Prepare(id, session, submission, receive)) break;
      if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
      if (absl::string_view source = wire::NameView(submission.peer); !source.empty()) {
        const size_t slash = source.find('/');
        receive.source_node =
            slash == absl::string_view::npos ? node_name_ : std::string(source.substr(0, slash));
        receive.source_endpoint =
            std::string(slash == absl::string_view::npos ? source : source.substr(slash + 1));
      }
      matcher_.Receive(std::move(receive));
      return;
    }
    case wire::RingOp::kWrite:
    case wire::RingOp::kRead:
      WindowOp(id, session, submission);
      return;
  }
  if (submission.op < static_cast<uint16_t>(wire::RingOp::kNop) ||
      submission.op > wire::kMaxRingOp) {
    Complete(id, submission.op_id,
             absl::InvalidArgumentError("unknown operation " + std::to_string(submission.op)));
  }
}

bool RingEngine::Prepare(uint64_t id, Session& session, const wire::Submission& submission,
                         Pending& into) {
  const absl::string_view endpoint = wire::NameView(submission.endpoint);
  if (Owner(endpoint) != id) {
    Complete(id, submission.op_id, NotBound(endpoint));
    return false;
  }
  auto part = FindPart(id, session, submission.region, submission.offset, submission.length);
  if (!part.ok()) {
    Complete(id, submission.op_id, part.status());
    return false;
  }
  into.session = id;
  into.op_id = submission.op_id;
  into.region = std::move(part->region);
  into.offset = submission.offset;
  into.length = submission.length;
  into.tag = submission.tag;
  into.from.assign(endpoint.data(), endpoint.size());  // sends: the full address only when needed
  return true;
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

void RingEngine::SetArea(uint64_t id, const wire::Submission& submission) {
  std::shared_ptr<Region> region = sessions_manager_.FindRegion(id, submission.region);
  if (!region) {
    Complete(id, submission.op_id,
             absl::InvalidArgumentError("unknown region " + std::to_string(submission.region)));
    return;
  }
  auto slots = matcher_.SetArea(id, std::move(region), submission.slot_size);
  if (!slots.ok()) {
    Complete(id, submission.op_id, slots.status());
    return;
  }
  Complete(id, submission.op_id, absl::OkStatus(), *slots);
  matcher_.FillArea(id);
}

bool RingEngine::Abort(uint64_t id, uint64_t op_id, const absl::Status& why) {
  return matcher_.Abort(id, op_id, why) || (remote_ && remote_->AbortFromLoop(id, op_id, why));
}

void RingEngine::AddDeadline(uint64_t id, uint64_t op_id, uint32_t timeout_ms) {
  if (!sessions_.contains(id)) return;
  // The clock is read once per poll, not per operation (it showed in
  // profiles): a deadline counts from the start of the poll that took its
  // operation, which is after the client submitted it.
  if (!poll_clock_read_) {
    poll_clock_ = absl::Now();
    poll_clock_read_ = true;
  }
  const bool earliest = deadlines_.Add(id, op_id, timeout_ms, poll_clock_);
  if (earliest) ArmDeadlineTimer();
}

void RingEngine::ArmDeadlineTimer() {
  if (!deadline_timer_.valid()) return;
  itimerspec spec{};
  if (auto next = deadlines_.Next()) {
    const int64_t ns = std::max<int64_t>(1000, absl::ToInt64Nanoseconds(*next - absl::Now()));
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  ::timerfd_settime(deadline_timer_.get(), 0, &spec, nullptr);
}

void RingEngine::OnDeadlineTimer() {
  uint64_t expirations;
  while (::read(deadline_timer_.get(), &expirations, sizeof(expirations)) > 0) {
  }
  deadlines_.Expire([this](uint64_t session, uint64_t op_id, const absl::Status& why) {
    AbortAnywhere(session, op_id, why, nullptr);
  });
  ArmDeadlineTimer();
}

}  // namespace axon::daemon
