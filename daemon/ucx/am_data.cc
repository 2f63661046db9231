#include "daemon/ucx/am_data.h"

#include <array>
#include <bit>
#include <new>
#include <vector>

namespace axon::ucx {
namespace {

// Classes 1 KiB .. 1 MiB; larger copies (rare: UCX sends those by
// rendezvous or in descriptors) are allocated and freed each time.
constexpr int kMinShift = 10, kMaxShift = 20;
constexpr size_t kKeptPerClass = 64;

struct Spares {
  std::array<std::vector<uint8_t*>, kMaxShift - kMinShift + 1> free;
  ~Spares() {
    for (auto& list : free) {
      for (uint8_t* b : list) ::operator delete(b);
    }
  }
};
thread_local Spares spares;

int ShiftFor(size_t n) {
  const int shift = static_cast<int>(std::bit_width(n - 1));
  return shift < kMinShift ? kMinShift : shift;
}

}  // namespace

uint8_t* RecycledBlocks::Take(size_t n, size_t& capacity) {
  const int shift = ShiftFor(n);
  if (shift > kMaxShift) {
    capacity = n;
    return static_cast<uint8_t*>(::operator new(n));
  }
  capacity = size_t{1} << shift;
  auto& list = spares.free[shift - kMinShift];
  if (list.empty()) return static_cast<uint8_t*>(::operator new(capacity));
  uint8_t* b = list.back();
  list.pop_back();
  return b;
}

void RecycledBlocks::Give(uint8_t* block, size_t capacity) {
  const int shift = ShiftFor(capacity);
  if (shift > kMaxShift || (size_t{1} << shift) != capacity) {
    ::operator delete(block);
    return;
  }
  auto& list = spares.free[shift - kMinShift];
  if (list.size() >= kKeptPerClass) {
    ::operator delete(block);
    return;
  }
  if (list.capacity() == 0) list.reserve(kKeptPerClass);
  list.push_back(block);
}

}  // namespace axon::ucx
