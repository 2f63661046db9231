// SmallBytes<N>: bytes held inline up to N, on the heap beyond. For the
// header and data of each received active message, which are small and
// moved a few times on their way (a queue, the handler, the engine). Moves
// and copies-in are one memcpy of the bytes present (absl::InlinedVector
// moved and assigned bytes one at a time: about 1,000 instructions per
// message in callgrind).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace axon {

template <size_t N>
class SmallBytes {
 public:
  SmallBytes() = default;
  SmallBytes(const SmallBytes&) = delete;
  SmallBytes& operator=(const SmallBytes&) = delete;
  SmallBytes(SmallBytes&& other) noexcept { Take(other); }
  SmallBytes& operator=(SmallBytes&& other) noexcept {
    if (this != &other) {
      Release();
      Take(other);
    }
    return *this;
  }
  ~SmallBytes() { Release(); }

  // Replaces the contents with [p, p + n).
  void assign(const uint8_t* p, size_t n) {
    Resize(n);
    if (n > 0) std::memcpy(data(), p, n);
  }
  // Makes it `n` bytes long; the bytes are unspecified (to be written).
  void Resize(size_t n) {
    if (n > capacity()) {
      Release();
      heap_ = static_cast<uint8_t*>(::operator new(n));
      heap_capacity_ = n;
    }
    size_ = n;
  }

  uint8_t* data() { return heap_ != nullptr ? heap_ : inline_; }
  const uint8_t* data() const { return heap_ != nullptr ? heap_ : inline_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uint8_t* begin() const { return data(); }
  const uint8_t* end() const { return data() + size_; }
  bool on_heap() const { return heap_ != nullptr; }

 private:
  size_t capacity() const { return heap_ != nullptr ? heap_capacity_ : N; }
  void Release() {
    if (heap_ != nullptr) ::operator delete(heap_);
    heap_ = nullptr;
    size_ = 0;
  }
  void Take(SmallBytes& other) {
    size_ = other.size_;
    if (other.heap_ != nullptr) {
      heap_ = std::exchange(other.heap_, nullptr);
      heap_capacity_ = other.heap_capacity_;
    } else if (size_ > 0) {
      std::memcpy(inline_, other.inline_, size_);
    }
    other.size_ = 0;
  }

  uint8_t* heap_ = nullptr;
  size_t heap_capacity_ = 0;
  size_t size_ = 0;
  uint8_t inline_[N];
};

}  // namespace axon
