// ucx::AmData is the data of an eager active message, with no allocation per
// message once warm:
// - data UCX hands over in a receive descriptor it lets us keep
//   (UCP_AM_RECV_ATTR_FLAG_DATA) stays there, held without a copy, and goes
//   back to UCX when the AmData goes;
// - other data (a shared-memory FIFO element, a TCP segment) is copied:
//   inline up to kInline, which covers the 512-byte FIFO element Context
//   sets, else into a block recycled on this thread.
// UCX thread only, and never outliving the worker it came from.
#pragma once

#include <ucp/api/ucp.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

namespace axon::ucx {

// Blocks for copies past AmData::kInline, by power-of-two size, kept on the
// thread that frees them.
class RecycledBlocks {
 public:
  // A block of at least `n` bytes; `capacity` gets its size.
  static uint8_t* Take(size_t n, size_t& capacity);
  static void Give(uint8_t* block, size_t capacity);
};

class AmData {
 public:
  // Data this long or shorter is copied (a UCX "short" message must be).
  static constexpr size_t kInline = 512;

  AmData() = default;
  AmData(const AmData&) = delete;
  AmData& operator=(const AmData&) = delete;
  AmData(AmData&& other) noexcept { Take(other); }
  AmData& operator=(AmData&& other) noexcept {
    if (this != &other) {
      Reset();
      Take(other);
    }
    return *this;
  }
  ~AmData() { Reset(); }

  // Copies [p, p + n).
  void assign(const uint8_t* p, size_t n) {
    uint8_t* into = Resize(n);
    if (n > 0) std::memcpy(into, p, n);
  }
  // Makes it `n` bytes of its own, to be written at the result.
  uint8_t* Resize(size_t n) {
    Reset();
    size_ = n;
    if (n <= kInline) return inline_;
    return block_ = RecycledBlocks::Take(n, block_capacity_);
  }
  // Holds UCX's descriptor `p` of `n` bytes, from `worker`'s AM callback
  // that returns UCS_INPROGRESS for it.
  void Hold(ucp_worker_h worker, const uint8_t* p, size_t n) {
    Reset();
    worker_ = worker;
    held_ = p;
    size_ = n;
  }
  // Empties it, giving a held descriptor back to UCX.
  void Reset() {
    if (held_ != nullptr) ucp_am_data_release(worker_, const_cast<uint8_t*>(held_));
    if (block_ != nullptr) RecycledBlocks::Give(block_, block_capacity_);
    held_ = nullptr;
    block_ = nullptr;
    size_ = 0;
  }

  const uint8_t* data() const {
    return held_ != nullptr ? held_ : block_ != nullptr ? block_ : inline_;
  }
  size_t size() const { return size_; }
  bool empty() const { return size() == 0; }
  const uint8_t* begin() const { return data(); }
  const uint8_t* end() const { return data() + size(); }
  // Whether the bytes are UCX's descriptor, held (not copied).
  bool held() const { return held_ != nullptr; }

 private:
  void Take(AmData& other) {
    worker_ = other.worker_;
    held_ = std::exchange(other.held_, nullptr);
    block_ = std::exchange(other.block_, nullptr);
    block_capacity_ = other.block_capacity_;
    size_ = std::exchange(other.size_, 0);
    if (held_ == nullptr && block_ == nullptr && size_ > 0)
      std::memcpy(inline_, other.inline_, size_);
  }

  ucp_worker_h worker_ = nullptr;
  const uint8_t* held_ = nullptr;  // UCX's descriptor
  uint8_t* block_ = nullptr;       // a recycled block
  size_t block_capacity_ = 0;
  size_t size_ = 0;
  uint8_t inline_[kInline];
};

}  // namespace axon::ucx
