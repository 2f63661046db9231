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

size_t HostCopier::PieceBytes(uint64_t total) const {
  const size_t per_thread = (total + threads_.size() - 1) / threads_.size();
  return std::max(kMinPiece, (per_thread + 63) & ~size_t{63});
}

void HostCopier::Copy(const ucx::Parts& from, uint8_t* into,
                      std::vector<std::shared_ptr<Region>> keep,
                      absl::AnyInvocable<void(absl::Status) &&> done) {
  // Back to back in `into`: a block per part.
  std::vector<Block> blocks;
  blocks.reserve(from.size());
  for (absl::Span<const uint8_t> s : from) {
    blocks.push_back({s.data(), into, s.size()});
    into += s.size();
  }
  Scatter(std::move(blocks), std::move(keep), std::move(done));
}

void HostCopier::Scatter(std::vector<Block> blocks, std::vector<std::shared_ptr<Region>> keep,
                         absl::AnyInvocable<void(absl::Status) &&> done) {
  uint64_t total = 0;
  for (const Block& b : blocks) total += b.bytes;
  ++copies_;
  bytes_ += total;
  auto job = std::make_shared<Job>();
  job->keep = std::move(keep);
  job->done = std::move(done);
  // About a thread's share per piece, cut at cache-line multiples: a block
  // larger than that is cut (a few large blocks still keep every thread
  // busy), runs of smaller neighbours go to one thread.
  const size_t target = PieceBytes(total);
  job->blocks.reserve(blocks.size());
  for (const Block& b : blocks) {
    for (size_t at = 0; at < b.bytes; at += target) {
      job->blocks.push_back({b.from + at, b.to + at, std::min(target, b.bytes - at)});
    }
  }
  std::vector<Piece> pieces;
  size_t first = 0, bytes = 0;
  for (size_t i = 0; i < job->blocks.size(); ++i) {
    bytes += job->blocks[i].bytes;
    if (bytes >= target || i + 1 == job->blocks.size()) {
      pieces.push_back({job, first, i + 1 - first});
      first = i + 1;
      bytes = 0;
    }
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
    for (size_t i = p.first; i < p.first + p.count; ++i) {
      const Block& b = p.job->blocks[i];
      std::memcpy(b.to, b.from, b.bytes);
    }
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
