// Counts control-plane RPCs per method, for Admin/Stats.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace axon::daemon {

class RpcStats {
 public:
  void Count(const std::string& method) {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[method];
  }
  std::map<std::string, uint64_t> Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> calls_;  // guarded by mu_
};

}  // namespace axon::daemon
