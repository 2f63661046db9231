#include "client/lib/forked.h"

#include <pthread.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace axon::internal {
namespace {

std::atomic<uint64_t> generation{0};

}  // namespace

void WatchForFork() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, [] { ++generation; }); });
}

uint64_t ForkGeneration() { return generation.load(std::memory_order_relaxed); }

absl::Status RefuseIfForkedSince(uint64_t at) {
  if (ForkGeneration() == at) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this process is a fork() child: the client is its parent's; connect a new one");
}

void KeepForever(std::shared_ptr<void> what) {
  static std::mutex mu;
  static auto* kept = new std::vector<std::shared_ptr<void>>;
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(std::move(what));
}

}  // namespace axon::internal
