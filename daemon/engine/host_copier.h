// HostCopier: large host-to-host copies of the local path (two sessions of
// this node), and one-sided batches of many small blocks, split into pieces
// that a few threads of its own copy side by side. One thread's memcpy reaches a fraction of the
// memory bandwidth of a many-core host; several reach more, and the UCX thread goes on serving
// other sessions meanwhile instead of copying.
//
// The engine hands a copy over with Copy (loop thread) and watches fd(): it
// becomes readable when copies finish, and RunFinished (loop thread) runs
// their `done`. Everything a copy needs stays alive through `keep` until
// then. Destroying the copier drops copies not finished, without running
// their `done` (the engine goes with it).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "common/annotated_mutex.h"
#include "common/unique_fd.h"
#include "daemon/memory/region.h"
#include "daemon/ucx/endpoint.h"

namespace axon::daemon {

class HostCopier {
 public:
  // `threads` copying threads; copies of at least `min_bytes` go to them.
  static absl::StatusOr<std::unique_ptr<HostCopier>> Start(int threads, uint64_t min_bytes);
  ~HostCopier();
  HostCopier(const HostCopier&) = delete;
  HostCopier& operator=(const HostCopier&) = delete;

  // The number of threads `copy_threads` stands for: itself, or (0) a
  // quarter of the cores, from 1 to 8.
  static int ThreadsFor(int copy_threads);

  bool Takes(uint64_t bytes) const { return bytes >= min_bytes_; }
  // Copies `from` (back to back) to `into`, then has RunFinished run `done`.
  void Copy(const ucx::Parts& from, uint8_t* into, std::vector<std::shared_ptr<Region>> keep,
            absl::AnyInvocable<void(absl::Status) &&> done);
  struct Block {
    const uint8_t* from = nullptr;
    uint8_t* to = nullptr;
    size_t bytes = 0;
  };
  // Copies each block to its own place, runs of neighbouring blocks to one
  // thread (a block larger than a thread's share in pieces), then has
  // RunFinished run `done` once for all of them.
  void Scatter(std::vector<Block> blocks, std::vector<std::shared_ptr<Region>> keep,
               absl::AnyInvocable<void(absl::Status) &&> done);
  // Readable (an eventfd) when a copy has finished since RunFinished last ran.
  int fd() const { return event_.get(); }
  void RunFinished();

  uint64_t copies() const { return copies_; }
  uint64_t bytes() const { return bytes_; }
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  struct Job {
    std::vector<Block> blocks;  // fixed once queued
    std::vector<std::shared_ptr<Region>> keep;
    absl::AnyInvocable<void(absl::Status) &&> done;
    int unfinished = 0;  // pieces, guarded by the copier's mu_
  };
  // Blocks [first, first + count) of the job: one thread's share.
  struct Piece {
    std::shared_ptr<Job> job;
    size_t first = 0, count = 0;
  };
  HostCopier(uint64_t min_bytes, UniqueFd event)
      : min_bytes_(min_bytes), event_(std::move(event)) {}
  // About one piece's worth of bytes per thread, never under kMinPiece.
  size_t PieceBytes(uint64_t total) const;
  void Work();

  const uint64_t min_bytes_;
  UniqueFd event_;
  Mutex mu_;
  std::condition_variable_any ready_;
  std::deque<Piece> pieces_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Job>> finished_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
  uint64_t copies_ = 0, bytes_ = 0;  // loop thread
};

}  // namespace axon::daemon
