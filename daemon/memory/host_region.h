// A client's host memory, mapped into axond: a memfd the client sent over its
// session socket, checked and mapped once (MAP_SHARED), unmapped and closed
// exactly once when the region is released or its session dies.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "daemon/memory/region.h"

namespace axon::daemon {

class HostRegion final : public Region {
 public:
  // INVALID_ARGUMENT unless `fd` is a memfd sealed against shrinking
  // (F_SEAL_SHRINK, so the client cannot pull pages out from under the
  // daemon's mapping) holding at least `length` bytes, with 0 < length.
  static absl::StatusOr<std::unique_ptr<HostRegion>> Map(UniqueFd fd, uint64_t length);
  // The checks Map makes, without mapping anything.
  static absl::Status Check(int fd, uint64_t length);
  ~HostRegion() override;

  void PinForGpu() override;

 private:
  HostRegion(UniqueFd fd, uint8_t* data, uint64_t length)
      : Region(data, length, MemoryKind::kHost, -1), fd_(std::move(fd)) {}

  UniqueFd fd_;
  bool pin_tried_ = false;
  bool pinned_ = false;  // registered with CUDA (cudaHostRegister)
};

}  // namespace axon::daemon
