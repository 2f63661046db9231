// Counts control-plane RPCs per method, for Admin/Stats.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "common/annotated_mutex.h"

namespace axon::daemon {

class RpcStats {
 public:
  void Count(const std::string& method) {
    MutexLock lock(&mu_);
    ++calls_[method];
  }
  std::map<std::string, uint64_t> Snapshot() const {
    MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable Mutex mu_;
  std::map<std::string, uint64_t> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace axon::daemon
