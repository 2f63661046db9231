#include "daemon/engine/host_copier.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/errno_status.h"

namespace axon::daemon {
namespace {

// Pieces of at least this many bytes: smaller ones cost more in hand-offs
// than a thread of their own gains.
constexpr size_t kMinPiece = size_t{1} << 20;

}  // namespace

int HostCopier::ThreadsFor(int copy_threads) {
  if (copy_threads > 0) return copy_threads;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores / 4, 1, 8);
}

absl::StatusOr<std::unique_ptr<HostCopier>> HostCopier::Start(int threads, uint64_t min_bytes) {
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event.valid()) return ErrnoStatus(errno, "eventfd for the copy threads");
  std::unique_ptr<HostCopier> copier(new HostCopier(min_bytes, std::move(event)));
  for (int i = 0; i < threads; ++i) {
    copier->threads_.emplace_back([raw = copier.get()] {
      ::pthread_setname_np(::pthread_self(), "axond-copy");
      raw->Work();
    });
  }
  return copier;
}

HostCopier::~HostCopier() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void HostCopier::Copy(const ucx::Parts& from, uint8_t* into,
                      std::vector<std::shared_ptr<Region>> keep,
                      absl::AnyInvocable<void(absl::Status) &&> done) {
  uint64_t total = 0;
  for (const auto& s : from) total += s.size();
  ++copies_;
  bytes_ += total;
  auto job = std::make_shared<Job>();
  job->keep = std::move(keep);
  job->done = std::move(done);
  // About one piece per thread, cut at cache-line multiples, never across
  // two parts.
  const size_t per_thread = (total + threads_.size() - 1) / threads_.size();
  const size_t piece = std::max(kMinPiece, (per_thread + 63) & ~size_t{63});
  std::vector<Piece> pieces;
  for (absl::Span<const uint8_t> s : from) {
    for (size_t at = 0; at < s.size(); at += piece) {
      const size_t n = std::min(piece, s.size() - at);
      pieces.push_back({s.data() + at, into + at, n, job});
    }
    into += s.size();
  }
  {
    MutexLock lock(&mu_);
    if (pieces.empty()) {  // nothing to copy: finished at once
      finished_.push_back(job);
    } else {
      job->unfinished = static_cast<int>(pieces.size());
      for (Piece& p : pieces) pieces_.push_back(std::move(p));
    }
  }
  if (pieces.empty()) {
    const uint64_t one = 1;
    (void)::write(event_.get(), &one, sizeof(one));
  } else {
    ready_.notify_all();
  }
}

void HostCopier::Work() {
  while (true) {
    Piece p;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && pieces_.empty()) ready_.wait(mu_);
      if (stopping_) return;
      p = std::move(pieces_.front());
      pieces_.pop_front();
    }
    std::memcpy(p.to, p.from, p.bytes);
    bool last = false;
    {
      MutexLock lock(&mu_);
      if (--p.job->unfinished == 0) {
        finished_.push_back(std::move(p.job));
        last = true;
      }
    }
    if (last) {
      const uint64_t one = 1;
      (void)::write(event_.get(), &one, sizeof(one));
    }
  }
}

void HostCopier::RunFinished() {
  uint64_t count = 0;
  (void)::read(event_.get(), &count, sizeof(count));
  std::vector<std::shared_ptr<Job>> finished;
  {
    MutexLock lock(&mu_);
    finished.swap(finished_);
  }
  for (auto& job : finished) std::move(job->done)(absl::OkStatus());
}

}  // namespace axon::daemon
