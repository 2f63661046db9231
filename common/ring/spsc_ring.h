// A single-producer single-consumer ring of fixed-size slots in memory shared
// between two processes (a memfd both map): the per-message path between
// libaxon and axond, so that a message costs no system call and no gRPC.
//
// Memory layout: a RingHeader (positions on separate cache lines) followed by
// `capacity` slots of `slot_size` bytes; each slot holds a u32 word and the
// message bytes. The word is 0 while the slot is empty and the message's
// length + 1 once it is full: the producer writes it last, and the consumer
// polls the slot itself and clears it as it takes the message. So finding a
// message costs the consumer one cache line from the producer (the slot,
// which also holds the message's first bytes), not two (the tail, then the
// slot). The tail still moves, for a consumer about to sleep and for size().
// The consumer that finds the ring empty announces it will
// sleep (`consumer_sleeping`) and waits on a doorbell (an eventfd); a producer
// rings the doorbell only when that flag is set, so a busy pair never makes a
// system call and an idle one uses no CPU.
//
// The other side is not trusted: the geometry is fixed when a side attaches
// (from its own arguments, never re-read from shared memory), and every
// position read from shared memory is checked; a ring whose positions make no
// sense is reported corrupt rather than read past its end.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon::ring {

struct alignas(64) RingHeader {
  uint32_t magic;
  uint32_t capacity;   // slots, a power of two
  uint32_t slot_size;  // bytes per slot, including the u32 length
  uint32_t reserved;
  alignas(64) std::atomic<uint64_t> head;  // next slot to consume; written by the consumer
  alignas(64) std::atomic<uint64_t> tail;  // next slot to fill; written by the producer
  alignas(64) std::atomic<uint32_t> consumer_sleeping;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring positions must be lock-free");

// "AXN2": slots announce themselves (the first layout, "AXNR", had the
// consumer read the tail); a client and a daemon of different layouts refuse
// to attach rather than misread each other.
inline constexpr uint32_t kRingMagic = 0x324e5841;

// Bytes of shared memory a ring of this geometry needs.
size_t RingBytes(uint32_t capacity, uint32_t slot_size);

class SpscRing {
 public:
  // Writes a fresh header into `memory` (which holds RingBytes(...)).
  static absl::Status Initialize(void* memory, size_t bytes, uint32_t capacity, uint32_t slot_size);
  // Attaches to a ring in `memory` of the geometry the caller expects; the
  // header in memory must agree.
  static absl::StatusOr<SpscRing> Attach(void* memory, size_t bytes, uint32_t capacity,
                                         uint32_t slot_size);

  // Producer. False when the ring is full (back-pressure). INVALID_ARGUMENT
  // for a message longer than a slot; DATA_LOSS when the ring is corrupt.
  absl::StatusOr<bool> TryPush(absl::Span<const uint8_t> message);
  // After pushing: true when the consumer sleeps and the doorbell must ring.
  bool ConsumerNeedsWakeup() const;

  // Consumer. Copies the next message into `out` (at least max_message()
  // bytes) and returns its length, or nullopt-as-(-1) when empty.
  absl::StatusOr<int64_t> TryPop(absl::Span<uint8_t> out);
  // Whether TryPop would find a message: two atomic loads, no side effect, so
  // a thread that does not hold the consumer's lock may spin on it.
  bool HasMessage() const {
    const uint64_t head = header_->head.load(std::memory_order_relaxed);
    return Word(Slot(head)).load(std::memory_order_acquire) != 0;
  }
  // Before sleeping: announces it, and returns false if a message arrived
  // meanwhile (then do not sleep). After waking: call Awake().
  bool PrepareToSleep();
  void Awake();

  size_t max_message() const { return slot_size_ - sizeof(uint32_t); }
  uint32_t capacity() const { return capacity_; }
  // Messages waiting, as far as this side can tell.
  uint64_t size() const;

 private:
  SpscRing(RingHeader* header, uint8_t* slots, uint32_t capacity, uint32_t slot_size)
      : header_(header), slots_(slots), capacity_(capacity), slot_size_(slot_size) {}
  uint8_t* Slot(uint64_t position) const {
    return slots_ + (position & (capacity_ - 1)) * static_cast<size_t>(slot_size_);
  }

  RingHeader* header_;
  uint8_t* slots_;
  uint32_t capacity_;
  uint32_t slot_size_;
  // The slot's word (see the top): 0 empty, else length + 1.
  static std::atomic_ref<uint32_t> Word(uint8_t* slot) {
    return std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(slot));
  }

  // The consumer's position as last read (and checked). The producer re-reads
  // it only when the ring looks full, so a busy pair does not pull the other's
  // cache line on every entry.
  uint64_t head_seen_ = 0;
};

}  // namespace axon::ring
