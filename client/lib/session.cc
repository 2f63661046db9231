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

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

absl::string_view ArrivalEndpoint(const wire::Completion& arrival) {
  const absl::string_view names = wire::NameView(arrival.message);
  return names.substr(0, names.find('\n'));
}

Message ArrivalMessage(const wire::Completion& arrival, const uint8_t* area, uint64_t slot_size) {
  const absl::string_view names = wire::NameView(arrival.message);
  const size_t newline = names.find('\n');
  Message m;
  m.endpoint = std::string(names.substr(0, newline));
  m.from = newline == absl::string_view::npos ? "" : std::string(names.substr(newline + 1));
  m.tag = arrival.tag;
  m.slot = arrival.op_id;
  m.length = arrival.length;
  m.data = area + m.slot * slot_size;
  return m;
}

absl::StatusOr<wire::SessionReply> Session::Call(wire::SessionRequest request,
                                                 absl::Span<const int> fds) {
  std::lock_guard<std::mutex> lock(mu);
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

Session::~Session() {
  if (ring_memory != nullptr) ::munmap(ring_memory, ring_bytes);
}

absl::Status Session::SetupRings() {
  const size_t one = ring::RingBytes(wire::kRingSlots, wire::kRingSlotSize);
  ring_bytes = 2 * one;
  UniqueFd memfd(::memfd_create("axon-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(memfd.get(), static_cast<off_t>(ring_bytes)) != 0 ||
      ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sizing the rings memfd");
  }
  void* memory = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (memory == MAP_FAILED) return ErrnoStatus(errno, "mmap(rings)");
  ring_memory = memory;
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
  submissions.emplace(*sq);
  completions.emplace(*cq);
  daemon_bell.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  client_bell.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!daemon_bell.valid() || !client_bell.valid()) return ErrnoStatus(errno, "eventfd");
  const int fds[] = {memfd.get(), daemon_bell.get(), client_bell.get()};
  auto reply = Call({.type = wire::SessionMessageType::kSetupRings, .length = ring_bytes}, fds);
  if (!reply.ok()) return reply.status();
  return reply->status();
}

absl::StatusOr<uint64_t> Session::Enqueue(wire::Submission submission) {
  return EnqueueAll(absl::MakeSpan(&submission, 1));  // no vector to allocate per message
}

absl::StatusOr<uint64_t> Session::EnqueueAll(absl::Span<wire::Submission> all, Callback done) {
  std::lock_guard<std::mutex> lock(ring_mu);
  if (!submissions) return absl::FailedPreconditionError("the session has no rings");
  if (daemon_gone) return GoneStatus();
  if (detached) return absl::FailedPreconditionError("the session is detached");
  uint64_t op_id = 0;
  for (wire::Submission& submission : all) {
    submission.op_id = op_id = next_op++;
    while (true) {
      auto pushed = submissions->TryPush(wire::EntryBytes(submission));
      if (!pushed.ok()) return pushed.status();
      if (*pushed) break;
      // Full. The daemon stops taking submissions while this side's
      // completion ring is full, so take completions off it meanwhile (or
      // both would wait).
      if (auto st = DrainCompletions(); !st.ok()) return st;
      if (submissions->ConsumerNeedsWakeup()) RingDaemon();
      std::this_thread::yield();
    }
  }
  // Not yet drained (this thread holds the lock): no finished entry to check.
  if (done) callbacks.emplace(op_id, std::move(done));
  if (submissions->ConsumerNeedsWakeup()) RingDaemon();
  return op_id;
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
    if (completion->flags & wire::kCompletionArrival) {
      if (!arrival_handlers.empty()) {
        auto handler = arrival_handlers.find(ArrivalEndpoint(*completion));
        if (handler != arrival_handlers.end()) {
          due.emplace_back(handler->second, *completion);
          continue;
        }
      }
      arrivals.push_back(*completion);
    } else if (auto callback = callbacks.find(completion->op_id); callback != callbacks.end()) {
      due.emplace_back(std::move(callback->second), *completion);
      callbacks.erase(callback);
    } else {
      finished[completion->op_id] = *completion;
    }
  }
}

absl::StatusOr<wire::Completion> Session::WaitFor(uint64_t op_id, int wait_ms) {
  std::unique_lock<std::mutex> lock(ring_mu);
  wire::Completion done;
  auto st = WaitLoop(lock, wait_ms, [&] {
    auto it = finished.find(op_id);
    if (it == finished.end()) return false;
    done = it->second;
    finished.erase(it);
    return true;
  });
  if (!st.ok()) return st;
  return done;
}

absl::StatusOr<wire::Completion> Session::WaitForArrival(const std::string& endpoint, int wait_ms) {
  std::unique_lock<std::mutex> lock(ring_mu);
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
  std::unique_lock<std::mutex> lock(ring_mu);
  const uint64_t before = callbacks_run;
  return WaitLoop(lock, wait_ms, [&] { return callbacks_run != before; });
}

bool Session::RunCallbacks(std::unique_lock<std::mutex>& lock) {
  if (due.empty()) return false;
  std::vector<std::pair<Callback, wire::Completion>> run;
  run.swap(due);
  callbacks_run += run.size();
  lock.unlock();
  for (auto& [fn, completion] : run) fn(completion);
  lock.lock();
  if (due.empty()) {  // keep the storage for the next round
    run.clear();
    due.swap(run);
  }
  return true;
}

absl::Status Session::GoneStatus() {
  return absl::UnavailableError(
      "axond went away (its session socket closed); connect a new client once it is back");
}

void Session::DaemonGone() {
  if (daemon_gone.exchange(true)) return;
  detached = true;
  const std::string why(GoneStatus().message());
  for (auto& [op_id, fn] : callbacks) due.emplace_back(std::move(fn), Unavailable(op_id, why));
  callbacks.clear();
  drained.notify_all();
}

void Session::FailPending() {
  absl::flat_hash_map<uint64_t, Callback> waiting;
  absl::flat_hash_map<std::string, std::function<void(const wire::Completion&)>> handlers;
  {
    std::unique_lock<std::mutex> lock(ring_mu);
    RunCallbacks(lock);
    waiting.swap(callbacks);
    handlers.swap(arrival_handlers);
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

absl::Status Session::WaitLoop(std::unique_lock<std::mutex>& lock, int wait_ms,
                               const std::function<bool()>& take) {
  if (!completions) return absl::FailedPreconditionError("the session has no rings");
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Milliseconds(wait_ms);
  const absl::Time spin_until = start + absl::Microseconds(50);
  // The clock is read once every kSpinsPerClock empty polls: reading it on
  // each one showed in profiles (and absl's clock takes a lock that the
  // client's threads contend for).
  constexpr int kSpinsPerClock = 64;
  int spins = 0;
  absl::Time now = start;
  while (true) {
    if (take()) return absl::OkStatus();
    if (daemon_gone) {
      RunCallbacks(lock);
      return GoneStatus();
    }
    if (!due.empty()) {  // drained by another path (a full submission ring)
      RunCallbacks(lock);
      continue;
    }
    const size_t before = finished.size() + arrivals.size();
    if (auto st = DrainCompletions(); !st.ok()) return st;
    if (finished.size() + arrivals.size() != before || !due.empty()) {
      drained.notify_all();
      RunCallbacks(lock);
      continue;
    }
    if (++spins < kSpinsPerClock && wait_ms > 0) {
      // Spin without the lock: other threads submit, register callbacks and
      // wait meanwhile (spinning under it stalled every Send of the
      // client's other threads for the whole spin).
      lock.unlock();
      for (; spins < kSpinsPerClock && !completions->HasMessage(); ++spins) CpuRelax();
      lock.lock();
      continue;
    }
    spins = 0;
    now = absl::Now();
    if (now > deadline) {
      return absl::DeadlineExceededError("the operation did not complete in time");
    }
    if (now < spin_until) continue;
    if (sleeper) {  // another thread sleeps on the doorbell: wait for it to drain
      drained.wait_until(lock,
                         absl::ToChronoTime(std::min(deadline, now + absl::Milliseconds(10))));
      continue;
    }
    if (!completions->PrepareToSleep()) continue;
    sleeper = true;
    lock.unlock();
    // The doorbell, and the session socket: the daemon never writes to it
    // unasked, so a hang-up there is the daemon going away, and what waits
    // on it would otherwise wait forever.
    pollfd pfds[2] = {{client_bell.get(), POLLIN, 0}, {hangup_fd.load(), POLLRDHUP, 0}};
    ::poll(pfds, pfds[1].fd >= 0 ? 2 : 1,
           static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
    uint64_t count;
    while (::read(client_bell.get(), &count, sizeof(count)) > 0) {
    }
    lock.lock();
    if (pfds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      // Completions already on the ring are real: taken before the rest fail.
      (void)DrainCompletions();
      DaemonGone();
    }
    sleeper = false;
    completions->Awake();
    drained.notify_all();
  }
}

}  // namespace internal
}  // namespace axon
