// A client's host memory, mapped into axond: a memfd the client sent over its
// session socket, checked and mapped once (MAP_SHARED), unmapped and closed
// exactly once when the region is released or its session dies.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace axon::daemon {

class HostRegion {
 public:
  // INVALID_ARGUMENT unless `fd` is a memfd sealed against shrinking
  // (F_SEAL_SHRINK, so the client cannot pull pages out from under the
  // daemon's mapping) holding at least `length` bytes, with 0 < length.
  static absl::StatusOr<std::unique_ptr<HostRegion>> Map(UniqueFd fd, uint64_t length);
  // The checks Map makes, without mapping anything.
  static absl::Status Check(int fd, uint64_t length);
  ~HostRegion();
  HostRegion(const HostRegion&) = delete;
  HostRegion& operator=(const HostRegion&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t length() const { return length_; }

 private:
  HostRegion(UniqueFd fd, uint8_t* data, uint64_t length)
      : fd_(std::move(fd)), data_(data), length_(length) {}

  UniqueFd fd_;
  uint8_t* data_;
  uint64_t length_;
};

}  // namespace axon::daemon
