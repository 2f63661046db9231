#include "daemon/ucx/loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"

namespace axon::ucx {
namespace {

int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A cheap counter for timing every turn: the TSC on x86 (a few cycles; it
// runs at a constant rate on every x86 this runs on), else the clock.
uint64_t Ticks() {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(MonotonicNanos());
#endif
}

// Set for the life of a Loop's thread.
thread_local bool on_loop_thread = false;

}  // namespace

bool Loop::OnALoopThread() { return on_loop_thread; }

void Loop::CheckOnLoop(const char* function) {
  if (on_loop_thread) return;
  std::fprintf(stderr, "axond: %s runs only on the UCX loop thread, and was called off it\n",
               function);
  std::abort();
}

absl::StatusOr<std::unique_ptr<Loop>> Loop::Start(const ContextOptions& options) {
  return Launch(std::unique_ptr<Loop>(new Loop()), options);
}

absl::StatusOr<std::unique_ptr<Loop>> Loop::StartOn(std::shared_ptr<Context> context) {
  if (context == nullptr) return absl::InvalidArgumentError("no UCX context");
  std::unique_ptr<Loop> loop(new Loop());
  loop->context_ = std::move(context);
  return Launch(std::move(loop), {});
}

absl::StatusOr<std::unique_ptr<Loop>> Loop::Launch(std::unique_ptr<Loop> loop,
                                                   const ContextOptions& options) {
  loop->start_ns_ = MonotonicNanos();
  loop->start_ticks_ = Ticks();
  std::promise<absl::Status> started;
  auto started_future = started.get_future();
  loop->thread_ = std::thread([raw = loop.get(), &options, &started] {
    // Named for top -H, perf and gdb: the one thread that moves every message.
    ::pthread_setname_np(::pthread_self(), "axond-ucx");
    on_loop_thread = true;
    absl::Status st = raw->InitFromLoop(options);
    const bool ok = st.ok();
    started.set_value(std::move(st));
    if (ok) raw->RunFromLoop();
    // Destroy UCX objects on the thread that created them.
    raw->data_.reset();
    raw->control_.reset();
    if (!ok) raw->context_.reset();
  });
  if (absl::Status st = started_future.get(); !st.ok()) {
    loop->thread_.join();
    return st;
  }
  return loop;
}

Loop::~Loop() {
  if (!thread_.joinable()) return;  // Start failed; the thread cleaned up
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    has_tasks_.store(true, std::memory_order_release);
  }
  Wake();
  thread_.join();
  context_.reset();  // its workers are gone; another Loop may hold a shared one
}

absl::Status Loop::InitFromLoop(const ContextOptions& options) {
  wake_fd_.Reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  timer_fd_.Reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_fd_.valid()) return ErrnoStatus(errno, "timerfd_create");
  epoll_fd_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) return ErrnoStatus(errno, "epoll_create1");

  if (context_ == nullptr) {
    auto context = Context::Create(options);
    if (!context.ok()) return context.status();
    context_ = *std::move(context);
  }
  for (std::unique_ptr<Worker>* slot : {&control_, &data_}) {
    auto worker = Worker::Create(*context_);
    if (!worker.ok()) return worker.status();
    *slot = *std::move(worker);
  }

  for (int fd : {wake_fd_.get(), timer_fd_.get(), control_->event_fd(), data_->event_fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoStatus(errno, "epoll_ctl(ADD)");
    }
  }
  return absl::OkStatus();
}

bool Loop::RunTasksFromLoop(bool& ran) {
  // This runs every iteration of a busy loop: no allocation when idle.
  ran = false;
  if (!has_tasks_.load(std::memory_order_acquire)) return true;
  std::deque<absl::AnyInvocable<void() &&>> batch;
  bool stopping = false;
  {
    MutexLock lock(&mu_);
    batch.swap(queue_);
    stopping = stopping_;
    has_tasks_.store(false, std::memory_order_relaxed);
  }
  for (auto& task : batch) {
    std::move(task)();
    tasks_run_.fetch_add(1, std::memory_order_relaxed);
  }
  ran = !batch.empty();
  return !stopping;
}

absl::Duration Loop::busy() const {
  // Ticks to time at the rate seen since the loop started.
  const uint64_t ticks = Ticks() - start_ticks_;
  const int64_t ns = MonotonicNanos() - start_ns_;
  if (ticks == 0 || ns <= 0) return absl::ZeroDuration();
  const double per_tick = static_cast<double>(ns) / static_cast<double>(ticks);
  return absl::Nanoseconds(static_cast<double>(busy_ticks_.load(std::memory_order_relaxed)) *
                           per_tick);
}

bool Loop::ProgressFromLoop() {
  bool progressed = data_->Progress();
  if (control_due_ || ++turns_since_control_ >= kControlEvery) {
    turns_since_control_ = 0;
    control_due_ = control_->Progress();  // busy: again next turn
    progressed = control_due_ || progressed;
  }
  return progressed;
}

void Loop::RunFromLoop() {
  while (true) {
    const uint64_t turn_start = Ticks();
    bool ran_tasks = false;
    if (!RunTasksFromLoop(ran_tasks)) break;
    // One progress per iteration, then the poller: while both are busy they
    // take turns (calling progress until it finds nothing costs one more
    // call per message).
    const bool progressed = ProgressFromLoop();
    const Polled polled = poller_ ? poller_() : Polled::kIdle;
    if (ran_tasks || progressed || polled == Polled::kWork) {
      busy_ticks_.store(busy_ticks_.load(std::memory_order_relaxed) + (Ticks() - turn_start),
                        std::memory_order_relaxed);
    }
    if (progressed || polled != Polled::kIdle) continue;
    // From here until epoll_wait returns a Post must write the eventfd: the
    // flag goes up before the last look at the queue, which takes the mutex
    // a Post pushes under, so a task pushed after that look sees the flag.
    // A Post to a loop that runs costs no system call.
    sleeping_.store(true, std::memory_order_seq_cst);
    const auto stay_awake = [this] { sleeping_.store(false, std::memory_order_relaxed); };
    {
      MutexLock lock(&mu_);
      if (!queue_.empty() || stopping_) {
        stay_awake();
        continue;
      }
    }
    if (prepare_to_sleep_ && !prepare_to_sleep_()) {
      stay_awake();
      continue;
    }
    // The control worker may have skipped its turns: look at it before
    // sleeping.
    if (control_->Progress()) {
      control_due_ = true;
      stay_awake();
      continue;
    }
    absl::StatusOr<bool> armed = data_->Arm();
    if (armed.ok() && *armed) armed = control_->Arm();
    if (!armed.ok()) {
      spdlog::error("UCX thread: {}; polling instead of sleeping", armed.status().message());
    } else if (!*armed) {
      control_due_ = true;
      stay_awake();
      continue;  // events arrived meanwhile: progress them first
    }
    epoll_event events[16];
    const int n = ::epoll_wait(epoll_fd_.get(), events, 16, armed.ok() ? -1 : 10);
    stay_awake();
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    control_due_ = true;
    if (n < 0 && errno != EINTR) {
      spdlog::error("UCX thread: epoll_wait: {}", std::strerror(errno));
    }
    uint64_t drained = 0;
    while (::read(wake_fd_.get(), &drained, sizeof(drained)) > 0) {
    }
    if (::read(timer_fd_.get(), &drained, sizeof(drained)) > 0 && ticker_) ticker_();
    for (int i = 0; i < n; ++i) {
      auto it = watched_.find(events[i].data.fd);
      if (it == watched_.end()) continue;
      auto callback = it->second;  // the callback may unwatch its own fd
      callback();
    }
  }
}

absl::Status Loop::WatchFdFromLoop(int fd, std::function<void()> on_readable) {
  AXON_DCHECK_ON_LOOP();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(ADD)");
  }
  watched_[fd] = std::move(on_readable);
  return absl::OkStatus();
}

void Loop::UnwatchFdFromLoop(int fd) {
  AXON_DCHECK_ON_LOOP();
  if (watched_.erase(fd) > 0) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void Loop::SetPollerFromLoop(std::function<Polled()> poll, std::function<bool()> prepare_to_sleep) {
  AXON_DCHECK_ON_LOOP();
  poller_ = std::move(poll);
  prepare_to_sleep_ = std::move(prepare_to_sleep);
}

absl::Status Loop::SetTickerFromLoop(absl::Duration period, absl::AnyInvocable<void()> tick) {
  AXON_DCHECK_ON_LOOP();
  ticker_ = std::move(tick);
  itimerspec spec{};
  spec.it_interval = absl::ToTimespec(period);
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer_fd_.get(), 0, &spec, nullptr) != 0) {
    return ErrnoStatus(errno, "timerfd_settime");
  }
  return absl::OkStatus();
}

void Loop::Post(absl::AnyInvocable<void() &&> task) {
  {
    MutexLock lock(&mu_);
    queue_.push_back(std::move(task));
    has_tasks_.store(true, std::memory_order_release);
  }
  if (sleeping_.load(std::memory_order_seq_cst)) Wake();
}

void Loop::Wake() {
  wake_writes_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the loop will wake anyway.
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
}

absl::Status Loop::Ping(absl::Duration timeout) {
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  Post([done] { done->set_value(); });
  if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError(
        absl::StrCat("the UCX thread did not answer within ", absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

}  // namespace axon::ucx
