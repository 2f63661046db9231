// libaxon, part: the session's socket calls and its rings: submissions,
// completions, callbacks and the wait loop that drains them (session.h).
#include "client/lib/session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/lib/slot_hold.h"
#include "common/clock.h"
#include "common/cpu_relax.h"
#include "common/errno_status.h"
#include "common/fd_passing.h"

namespace axon {
namespace internal {
namespace {

// The completion of operation `op_id` failed UNAVAILABLE for `why`, made
// here for an operation the daemon will never answer.
wire::Completion Unavailable(uint64_t op_id, const std::string& why) {
  wire::Completion failed{.op_id = op_id,
                          .code = static_cast<uint32_t>(absl::StatusCode::kUnavailable)};
  wire::SetNameField(failed.message, why);
  return failed;
}

}  // namespace

absl::string_view ArrivalEndpoint(const wire::Completion& arrival) {
  return wire::NameView(arrival.arrival.endpoint);
}

Message ArrivalMessage(const wire::Completion& arrival, const uint8_t* area, uint64_t slot_size) {
  Message m;
  m.endpoint = wire::NameField(arrival.arrival.endpoint);
  m.from = wire::NameField(arrival.arrival.source);
  m.tag = arrival.tag;
  m.slot = arrival.arrival.slot;
  m.length = arrival.length;
  m.data = area + m.slot * slot_size;
  return m;
}

absl::StatusOr<wire::SessionReply> Session::Call(wire::SessionRequest request,
                                                 absl::Span<const int> fds) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  if (daemon_gone) return GoneStatus();
  return CallLocked(std::move(request), fds);
}

absl::StatusOr<wire::SessionReply> Session::CallLocked(wire::SessionRequest request,
                                                       absl::Span<const int> fds) {
  if (!socket.valid()) return absl::FailedPreconditionError("the session is detached");
  request.request_id = next_request++;
  if (auto st = SendMessage(socket.get(), wire::EncodeSessionRequest(request), fds); !st.ok()) {
    return st;
  }
  pollfd pfd{socket.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return absl::DeadlineExceededError("axond did not answer on the session socket");
  if (ready < 0) return ErrnoStatus(errno, "poll(session socket)");
  auto message = ReceiveMessage(socket.get());
  if (!message.ok()) return message.status();
  if (message->eof) return absl::UnavailableError("axond closed the session socket");
  auto reply = wire::DecodeSessionReply(message->bytes);
  if (!reply.ok()) return reply.status();
  if (reply->request_id != request.request_id && request.type != wire::SessionMessageType::kHello) {
    return absl::InternalError("reply to another request on the session socket");
  }
  return reply;
}

absl::StatusOr<uint64_t> Session::Register(wire::SessionRequest request,
                                           absl::Span<const int> fds) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  if (daemon_gone) return GoneStatus();
  request.region_id = next_region++;
  auto reply = CallLocked(request, fds);
  if (!reply.ok()) return reply.status();
  if (!reply->status().ok()) return reply->status();
  if (keep_state) {
    UniqueFd copy;
    if (!fds.empty()) {
      copy.Reset(::fcntl(fds[0], F_DUPFD_CLOEXEC, 0));
      if (!copy.valid()) {
        const absl::Status st = ErrnoStatus(errno, "dup(region fd)");
        (void)CallLocked(
            {.type = wire::SessionMessageType::kUnregister, .region_id = request.region_id}, {});
        return st;
      }
    }
    restorable.regions[request.region_id] = {.request = std::move(request), .fd = std::move(copy)};
  }
  return reply->value;
}

absl::Status Session::Unregister(uint64_t region_id) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  restorable.regions.erase(region_id);
  // A daemon that went away took the region with it; a restarted one never
  // hears of it.
  if (daemon_gone) return keep_state ? absl::OkStatus() : GoneStatus();
  auto reply =
      CallLocked({.type = wire::SessionMessageType::kUnregister, .region_id = region_id}, {});
  if (!reply.ok()) return reply.status();
  return reply->status();
}

Session::~Session() {
  if (ring_memory != nullptr) ::munmap(ring_memory, ring_bytes);
}

Session::Retired::~Retired() {
  if (memory != nullptr) ::munmap(memory, bytes);
}

absl::Status Session::SetupRings() {
  std::lock_guard<std::mutex> lock(mu);
  return SetupRingsLocked();
}

absl::Status Session::SetupRingsLocked() {
  const size_t one = ring::RingBytes(wire::kRingSlots, wire::kRingSlotSize);
  const size_t bytes = 2 * one;
  UniqueFd memfd(::memfd_create("axon-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(memfd.get(), static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sizing the rings memfd");
  }
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (memory == MAP_FAILED) return ErrnoStatus(errno, "mmap(rings)");
  auto retired_now = std::make_unique<Retired>();
  retired_now->memory = memory;  // unmapped by it unless the rings are taken into use
  retired_now->bytes = bytes;
  auto* base = static_cast<uint8_t*>(memory);
  for (size_t offset : {size_t{0}, one}) {
    if (auto st =
            ring::SpscRing::Initialize(base + offset, one, wire::kRingSlots, wire::kRingSlotSize);
        !st.ok()) {
      return st;
    }
  }
  auto sq = ring::SpscRing::Attach(base, one, wire::kRingSlots, wire::kRingSlotSize);
  auto cq = ring::SpscRing::Attach(base + one, one, wire::kRingSlots, wire::kRingSlotSize);
  if (!sq.ok()) return sq.status();
  if (!cq.ok()) return cq.status();
  UniqueFd to_daemon(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd to_client(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!to_daemon.valid() || !to_client.valid()) return ErrnoStatus(errno, "eventfd");
  const int fds[] = {memfd.get(), to_daemon.get(), to_client.get()};
  {
    RingLock ring(ring_mu);
    // Nobody sleeps on the old doorbell any more (its socket hung up, which
    // woke the sleeper); the old rings go to `retired` (and the ones retired
    // before them, long idle, are freed).
    drained.wait(ring, [&] { return !sleeper; });
    std::swap(retired_now->memory, ring_memory);
    std::swap(retired_now->bytes, ring_bytes);
    retired_now->submissions = std::exchange(submissions, std::make_unique<ring::SpscRing>(*sq));
    retired_now->completions = std::exchange(completions, std::make_unique<ring::SpscRing>(*cq));
    retired_now->daemon_bell = std::exchange(daemon_bell, std::move(to_daemon));
    retired_now->client_bell = std::exchange(client_bell, std::move(to_client));
    if (retired_now->memory != nullptr) retired = std::move(retired_now);
  }
  auto reply = CallLocked({.type = wire::SessionMessageType::kSetupRings, .length = bytes}, fds);
  if (!reply.ok()) return reply.status();
  return reply->status();
}

absl::StatusOr<uint64_t> Session::Enqueue(wire::Submission submission) {
  return EnqueueAll(absl::MakeSpan(&submission, 1));  // no vector to allocate per message
}

absl::StatusOr<uint64_t> Session::EnqueueAll(absl::Span<wire::Submission> all, Callback done,
                                             bool keep, HeldOp* hold) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<AdaptiveMutex> lock(ring_mu);
  if (!submissions) return absl::FailedPreconditionError("the session has no rings");
  if (daemon_gone || replaying) return GoneStatus();
  if (detached) return absl::FailedPreconditionError("the session is detached");
  uint64_t op_id = 0;
  for (wire::Submission& submission : all) {
    submission.op_id = op_id = next_op++;
    if (auto st = PushLocked(submission); !st.ok()) return st;
  }
  // Not yet drained (this thread holds the lock): no finished entry to check.
  if (done) callbacks.emplace(op_id, std::move(done));
  if (hold != nullptr) held_ops.emplace(op_id, std::move(*hold));
  if (keep && keep_state && all.size() == 1) kept.emplace(op_id, all[0]);
  if (submissions->ConsumerNeedsWakeup()) RingDaemon();
  return op_id;
}

absl::Status Session::PushLocked(const wire::Submission& submission) {
  while (true) {
    auto pushed = submissions->TryPush(wire::EntryBytes(submission));
    if (!pushed.ok()) return pushed.status();
    if (*pushed) return absl::OkStatus();
    // Full. The daemon stops taking submissions while this side's
    // completion ring is full, so take completions off it meanwhile (or
    // both would wait).
    if (auto st = DrainCompletions(); !st.ok()) return st;
    if (submissions->ConsumerNeedsWakeup()) RingDaemon();
    std::this_thread::yield();
  }
}

SlotHold::~SlotHold() {
  // Fails only when the session has ended, and the slot with it.
  (void)session_->ReleaseSlot(slot_);
}

absl::Status Session::ReleaseSlot(uint64_t slot) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<AdaptiveMutex> lock(ring_mu);
  if (keep_state) held_slots.erase(slot);  // a restarted daemon may use it again
  if (!submissions) return absl::FailedPreconditionError("the session has no rings");
  // Gone: the next daemon hears nothing of the slot, so it is free there.
  if (daemon_gone) return reconnecting ? absl::OkStatus() : GoneStatus();
  if (detached) return absl::FailedPreconditionError("the session is detached");
  // While a re-attach replays (its claims already on the ring), the release
  // goes behind them: refusing it would leave the slot claimed for good.
  // The daemon sends no completion for a release.
  const wire::Submission release{
      .op = static_cast<uint16_t>(wire::RingOp::kRelease), .op_id = next_op++, .slot = slot};
  if (auto st = PushLocked(release); !st.ok()) return st;
  if (submissions->ConsumerNeedsWakeup()) RingDaemon();
  return absl::OkStatus();
}

void Session::RingDaemon() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(daemon_bell.get(), &one, sizeof(one));
}

absl::Status Session::DrainCompletions() {
  std::array<uint8_t, wire::kRingSlotSize> entry;  // on the stack: this runs while spinning
  while (true) {
    auto n = completions->TryPop(absl::MakeSpan(entry));
    if (!n.ok()) return n.status();
    if (*n < 0) return absl::OkStatus();
    auto completion = wire::ReadCompletion(absl::MakeConstSpan(entry).subspan(0, *n));
    if (!completion) return absl::DataLossError("malformed completion on the ring");
    drains.store(drains.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (completion->flags & wire::kCompletionArrival) {
      if (keep_state) held_slots.insert(completion->arrival.slot);
      if (!arrival_handlers.empty()) {
        auto handler = arrival_handlers.find(ArrivalEndpoint(*completion));
        if (handler != arrival_handlers.end()) {
          arrivals_due.push_back({handler->second, *completion});
          continue;
        }
      }
      arrivals.push_back(*completion);
      continue;
    }
    if (!kept.empty()) kept.erase(completion->op_id);
    if (!held_ops.empty()) {
      if (auto held = held_ops.find(completion->op_id); held != held_ops.end()) {
        if (completion->code == 0) completion->length = held->second.length;
        held_ops.erase(held);
      }
    }
    if (auto callback = callbacks.find(completion->op_id); callback != callbacks.end()) {
      due.emplace_back(std::move(callback->second), *completion);
      callbacks.erase(callback);
    } else if ((completion->flags & wire::kCompletionQuiet) == 0) {
      finished[completion->op_id] = *completion;
    }  // else the failure of a quiet send forgotten (Forget): nobody waits for it
  }
}

bool Session::Forget(uint64_t op_id) {
  RingLock lock(ring_mu);
  if (callbacks.erase(op_id) == 0) return false;
  held_ops.erase(op_id);
  return true;
}

absl::StatusOr<wire::Completion> Session::WaitFor(uint64_t op_id, int wait_ms) {
  if (auto st = NotForked(); !st.ok()) return st;
  RingLock lock(ring_mu);
  wire::Completion done;
  auto st = WaitLoop(lock, wait_ms, [&] {
    auto it = finished.find(op_id);
    if (it != finished.end()) {
      done = it->second;
      finished.erase(it);
      return true;
    }
    if (op_id < lost_below && !kept.contains(op_id)) {  // its daemon went away
      done = Unavailable(op_id, std::string(GoneStatus().message()));
      return true;
    }
    return false;
  });
  if (!st.ok()) return st;
  return done;
}

absl::StatusOr<wire::Completion> Session::WaitForArrival(const std::string& endpoint, int wait_ms) {
  if (auto st = NotForked(); !st.ok()) return st;
  RingLock lock(ring_mu);
  wire::Completion done;
  auto st = WaitLoop(lock, wait_ms, [&] {
    for (auto it = arrivals.begin(); it != arrivals.end(); ++it) {
      if (ArrivalEndpoint(*it) == endpoint) {
        done = *it;
        arrivals.erase(it);
        return true;
      }
    }
    return false;
  });
  if (!st.ok()) return st;
  return done;
}

absl::Status Session::Progress(int wait_ms) {
  if (auto st = NotForked(); !st.ok()) return st;
  RingLock lock(ring_mu);
  const uint64_t before = callbacks_run;
  return WaitLoop(lock, wait_ms, [&] { return callbacks_run != before; });
}

bool Session::RunCallbacks(Session::RingLock& lock) {
  bool ran = false;
  if (!due.empty()) {
    std::vector<std::pair<Callback, wire::Completion>> run;
    run.swap(due);
    callbacks_run += run.size();
    lock.unlock();
    for (auto& [fn, completion] : run) fn(completion);
    // The callbacks go before the lock is taken again: what they hold may
    // take other locks as it goes (a Python object takes the GIL, whose
    // holder may be releasing a slot, which takes ring_mu).
    run.clear();
    lock.lock();
    if (due.empty()) due.swap(run);  // keep the storage for the next round
    ran = true;
  }
  if (ArrivalsToRun()) ran = RunArrivals(lock) || ran;
  return ran;
}

bool Session::RunArrivals(Session::RingLock& lock) {
  const std::thread::id outer = arrival_runner;  // this thread's when nested
  arrival_runner = std::this_thread::get_id();
  bool ran = false;
  while (!arrivals_due.empty()) {
    auto [fn, completion] = std::move(arrivals_due.front());
    arrivals_due.pop_front();
    ++callbacks_run;
    lock.unlock();
    (*fn)(completion);
    fn = nullptr;  // before the lock, as in RunCallbacks
    lock.lock();
    ran = true;
  }
  arrival_runner = outer;
  return ran;
}

absl::Status Session::GoneStatus() const {
  if (reconnecting) {
    return absl::UnavailableError(
        "axond went away (its session socket closed); libaxon is reconnecting: retry");
  }
  return absl::UnavailableError(
      "axond went away (its session socket closed); connect a new client once it is back");
}

void Session::DaemonGone() {
  if (daemon_gone.exchange(true)) return;
  if (!reconnecting) detached = true;
  lost_below = next_op;
  replaying = false;
  const std::string why(GoneStatus().message());
  for (auto it = callbacks.begin(); it != callbacks.end();) {
    if (reconnecting && kept.contains(it->first)) {  // posted again once back
      ++it;
      continue;
    }
    due.emplace_back(std::move(it->second), Unavailable(it->first, why));
    callbacks.erase(it++);
  }
  if (!reconnecting) kept.clear();
  held_ops.clear();  // nothing reads them any more
  drained.notify_all();
}

void Session::FailKept() {
  const std::string why(GoneStatus().message());
  for (const auto& [op_id, receive] : kept) {
    if (auto it = callbacks.find(op_id); it != callbacks.end()) {
      due.emplace_back(std::move(it->second), Unavailable(op_id, why));
      callbacks.erase(it);
    }
  }
  kept.clear();  // Wait sees them as lost now
  drained.notify_all();
}

void Session::FailPending() {
  absl::flat_hash_map<uint64_t, Callback> waiting;
  absl::flat_hash_map<std::string, ArrivalHandler> handlers;
  ReusedQueue<std::pair<ArrivalHandler, wire::Completion>> undelivered;
  {
    RingLock lock(ring_mu);
    RunCallbacks(lock);
    waiting.swap(callbacks);
    handlers.swap(arrival_handlers);
    // What another thread runs now stays its to finish; the rest goes.
    if (arrival_runner == std::thread::id()) undelivered.swap(arrivals_due);
    kept.clear();
  }
  for (auto& [op_id, fn] : waiting) fn(Unavailable(op_id, "the client detached from axond"));
}

void Session::AddCallback(uint64_t op_id, Callback done) {
  if (auto it = finished.find(op_id); it != finished.end()) {
    due.emplace_back(std::move(done), it->second);
    finished.erase(it);
    return;
  }
  callbacks[op_id] = std::move(done);
}

absl::Status Session::WaitLoop(Session::RingLock& lock, int wait_ms,
                               const std::function<bool()>& take) {
  if (!completions) return absl::FailedPreconditionError("the session has no rings");
  const absl::Time start = axon::Now();
  const absl::Time deadline = start + absl::Milliseconds(wait_ms);
  const absl::Time spin_until = start + absl::Microseconds(50);
  // The clock is read once every kSpinsPerClock empty polls: reading it on
  // each one showed in profiles (and absl's clock takes a lock that the
  // client's threads contend for).
  constexpr int kSpinsPerClock = 64;
  absl::Time now = start;
  while (true) {
    if (take()) return absl::OkStatus();
    if (daemon_gone) {
      if (RunCallbacks(lock)) continue;
      if (!reconnecting) return GoneStatus();
      // What waits now (a kept receive, the next arrival) may still come
      // once the reconnector is back: wait for it, within the deadline.
      if (axon::Now() > deadline) {
        return absl::DeadlineExceededError("the operation did not complete in time");
      }
      drained.wait_until(
          lock, absl::ToChronoTime(std::min(deadline, axon::Now() + absl::Milliseconds(50))));
      continue;
    }
    if (!due.empty() || ArrivalsToRun()) {  // drained by another path (a full submission ring)
      RunCallbacks(lock);
      continue;
    }
    const size_t before = finished.size() + arrivals.size();
    if (auto st = DrainCompletions(); !st.ok()) return st;
    if (finished.size() + arrivals.size() != before || !due.empty() || ArrivalsToRun()) {
      drained.notify_all();
      RunCallbacks(lock);
      continue;
    }
    if (wait_ms > 0 && axon::Now() < spin_until) {
      // Spin without the lock: other threads submit, register callbacks and
      // wait meanwhile (spinning under it stalled every Send of the
      // client's other threads for the whole spin). Taken again only when
      // there is something to do: a completion, another thread's drain (it
      // may have taken what this one waits for), the spin's end. Taking it
      // every few polls took the lock's cache line from the threads that
      // submit, a miss for each of their submissions.
      // A re-attach may replace the ring meanwhile; this one stays mapped
      // (retired) for a while yet.
      const ring::SpscRing* ring = completions.get();
      const uint64_t seen = drains.load(std::memory_order_relaxed);
      lock.unlock();
      for (int polls = 1; !ring->HasMessage() && drains.load(std::memory_order_relaxed) == seen &&
                          !daemon_gone.load(std::memory_order_relaxed);
           ++polls) {
        if (polls % kSpinsPerClock == 0 && axon::Now() >= spin_until) break;
        CpuRelax();
      }
      lock.lock();
      continue;
    }
    now = axon::Now();
    if (now > deadline) {
      return absl::DeadlineExceededError("the operation did not complete in time");
    }
    if (now < spin_until) continue;
    if (sleeper) {  // another thread sleeps on the doorbell: wait for it to drain
      drained.wait_until(lock,
                         absl::ToChronoTime(std::min(deadline, now + absl::Milliseconds(10))));
      continue;
    }
    ring::SpscRing* const sleeping_on = completions.get();
    if (!sleeping_on->PrepareToSleep()) continue;
    sleeper = true;
    // The doorbell, and the session socket: the daemon never writes to it
    // unasked, so a hang-up there is the daemon going away, and what waits
    // on it would otherwise wait forever. Both taken under the lock: a
    // re-attach retires them rather than closing them under this poll.
    pollfd pfds[2] = {{client_bell.get(), POLLIN, 0}, {hangup_fd.load(), POLLRDHUP, 0}};
    lock.unlock();
    ::poll(pfds, pfds[1].fd >= 0 ? 2 : 1,
           static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
    uint64_t count;
    while (::read(pfds[0].fd, &count, sizeof(count)) > 0) {
    }
    lock.lock();
    if ((pfds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) && pfds[1].fd == hangup_fd) {
      // Completions already on the ring are real: taken before the rest fail.
      (void)DrainCompletions();
      DaemonGone();
    }
    sleeper = false;
    sleeping_on->Awake();  // the ring it slept on: a re-attach waits for no sleeper
    drained.notify_all();
  }
}

}  // namespace internal
}  // namespace axon
