// UcxLoop is the UCX thread: it creates, owns and destroys its two workers
// (and the UCX context, unless several loops share one: StartOn), and every
// UCX call in axond runs on it. Other threads hand it work with Post(); it
// progresses the workers, then sleeps in epoll on their event fds and a
// wake-up eventfd, which a Post writes only while the loop sleeps. An idle
// daemon's UCX thread does not run. Methods whose names end in FromLoop may
// only be called on this thread.
//
// Two workers, because UCX polls every interface an endpoint of a worker
// uses on every ucp_worker_progress of that worker: the control worker holds
// the peer connections made through the listener (tcp, so each progress is
// an epoll_wait system call); the data worker holds only the endpoints that
// messages take (shared memory, cuda_ipc, IB where there is one). The loop
// progresses the data worker every turn and the control worker every
// kControlEvery turns, every turn while it is busy, after every wake-up and
// before every sleep.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/annotated_mutex.h"
#include "common/unique_fd.h"
#include "daemon/ucx/context.h"
#include "daemon/ucx/worker.h"

namespace axon::ucx {

// What a poller found on one turn (see SetPollerFromLoop).
enum class Polled {
  kIdle,  // nothing: the loop may sleep
  kSpin,  // nothing, but poll again instead of sleeping (work is likely soon)
  kWork,  // did something
};

class Loop {
 public:
  // Starts the thread and returns once the context and worker exist (or failed).
  static absl::StatusOr<std::unique_ptr<Loop>> Start(const ContextOptions& options);
  // Like Start, on `context`, which other Loops may share (made with
  // shared_by_threads): this Loop makes its own workers on it.
  static absl::StatusOr<std::unique_ptr<Loop>> StartOn(std::shared_ptr<Context> context);
  // Stops the thread: tasks already posted run first, then the worker and the
  // context are destroyed on the thread.
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Runs `task` on the UCX thread. Thread-safe. Tasks run in posting order.
  void Post(absl::AnyInvocable<void() &&> task);

  // Wakes the loop if it sleeps: for work that other threads hand to its
  // poller by other means (a Mailbox), which its prepare_to_sleep checks.
  // Thread-safe; no system call while the loop runs.
  void Nudge() {
    if (sleeping_.load(std::memory_order_seq_cst)) Wake();
  }

  // Round trip through the UCX thread: OK when it ran a task within `timeout`.
  absl::Status Ping(absl::Duration timeout);

  // Runs `fn` on the UCX thread and waits up to `timeout` for its result.
  // For other threads only (the UCX thread would wait on itself).
  template <typename T>
  absl::StatusOr<T> Call(absl::AnyInvocable<T() &&> fn, absl::Duration timeout) {
    auto result = std::make_shared<std::promise<T>>();
    auto future = result->get_future();
    Post([result, fn = std::move(fn)]() mutable { result->set_value(std::move(fn)()); });
    if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
      return absl::DeadlineExceededError("the UCX thread did not answer in time");
    }
    return future.get();
  }

  // Immutable once Start returned.
  const ContextInfo& info() const { return context_->info(); }

  uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }
  // Writes to the wake-up eventfd: a Post to a sleeping loop, and the stop.
  uint64_t wake_writes() const { return wake_writes_.load(std::memory_order_relaxed); }
  uint64_t tasks_run() const { return tasks_run_.load(std::memory_order_relaxed); }
  // Time the UCX thread spent on turns that did work (UCX progress, the
  // poller's work, posted tasks), since Start: busy time over wall time is
  // how loaded the thread is. Spinning and sleeping do not count. Each turn
  // is timed with the TSC (two reads of a few cycles), converted to time at
  // the rate seen since the start. Thread-safe.
  absl::Duration busy() const;

  bool InLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }
  // Whether the calling thread is a Loop's thread. The FromLoop rule is
  // checked with it (AXON_DCHECK_ON_LOOP) where the caller holds no Loop.
  static bool OnALoopThread();
  // Aborts, naming `function`, when not on a Loop's thread.
  static void CheckOnLoop(const char* function);
  // The control worker: the listener and the connections made through it.
  Worker& ControlWorkerFromLoop() { return *control_; }
  // The data worker: endpoints to other workers' addresses (messages).
  Worker& DataWorkerFromLoop() { return *data_; }
  // How often the control worker is progressed while it is idle.
  static constexpr unsigned kControlEvery = 16;

  // Runs `tick` on the UCX thread every `period` (a timerfd in the loop's
  // epoll set, so an idle loop still sleeps between ticks). One ticker.
  absl::Status SetTickerFromLoop(absl::Duration period, absl::AnyInvocable<void()> tick);

  // Runs `on_readable` on the UCX thread whenever `fd` is readable.
  absl::Status WatchFdFromLoop(int fd, std::function<void()> on_readable);
  void UnwatchFdFromLoop(int fd);
  // Other work the loop does besides UCX: `poll` runs every iteration and
  // says what it found (unless idle, the loop goes round again instead of
  // sleeping); `prepare_to_sleep` runs just before the loop would sleep and
  // may veto it (return false) when work arrived or it wants to spin on.
  void SetPollerFromLoop(std::function<Polled()> poll, std::function<bool()> prepare_to_sleep);

 private:
  Loop() = default;
  // Makes the fds and the workers, on `context_`, or on a context of its own
  // from `options` when there is none yet.
  absl::Status InitFromLoop(const ContextOptions& options);
  static absl::StatusOr<std::unique_ptr<Loop>> Launch(std::unique_ptr<Loop> loop,
                                                      const ContextOptions& options);
  void RunFromLoop();
  // Runs the posted tasks; false once the loop is stopping. `ran`: whether
  // there were any.
  bool RunTasksFromLoop(bool& ran);
  void Wake();

  // Progresses the workers (see the top of this file); whether either did
  // anything.
  bool ProgressFromLoop();

  std::shared_ptr<Context> context_;
  std::unique_ptr<Worker> control_;
  std::unique_ptr<Worker> data_;
  bool control_due_ = true;  // progress the control worker next turn
  unsigned turns_since_control_ = 0;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;  // eventfd: Post() writes, the loop drains
  UniqueFd timer_fd_;
  absl::AnyInvocable<void()> ticker_;
  std::map<int, std::function<void()>> watched_;
  std::function<Polled()> poller_;
  std::function<bool()> prepare_to_sleep_;

  Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> has_tasks_{false};  // queue_ or stopping_ changed

  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> wake_writes_{0};
  // Up while the loop is between its last look at the queue and the end of
  // epoll_wait (see RunFromLoop): only then does a Post wake it.
  std::atomic<bool> sleeping_{false};
  std::atomic<uint64_t> tasks_run_{0};
  // Ticks spent on busy turns (written by the loop thread only), and the
  // clock and ticks when the loop started (set before Start returns).
  std::atomic<uint64_t> busy_ticks_{0};
  int64_t start_ns_ = 0;
  uint64_t start_ticks_ = 0;
  std::thread thread_;
};

}  // namespace axon::ucx

// First line of every FromLoop entry point in debug builds (the sanitizer
// builds are debug builds): the threading rule, checked instead of trusted.
#ifdef NDEBUG
#define AXON_DCHECK_ON_LOOP() static_cast<void>(0)
#else
#define AXON_DCHECK_ON_LOOP() ::axon::ucx::Loop::CheckOnLoop(__func__)
#endif
