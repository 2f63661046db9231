#include "common/ring/spsc_ring.h"

#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace axon::ring {
namespace {

bool ValidGeometry(uint32_t capacity, uint32_t slot_size) {
  return capacity >= 2 && (capacity & (capacity - 1)) == 0 && capacity <= (1u << 24) &&
         slot_size >= 16 && slot_size % 8 == 0 && slot_size <= (1u << 20);
}

absl::Status Corrupt(uint64_t head, uint64_t tail) {
  return absl::DataLossError(
      absl::StrCat("ring positions make no sense (head ", head, ", tail ", tail, ")"));
}

}  // namespace

size_t RingBytes(uint32_t capacity, uint32_t slot_size) {
  return sizeof(RingHeader) + static_cast<size_t>(capacity) * slot_size;
}

absl::Status SpscRing::Initialize(void* memory, size_t bytes, uint32_t capacity,
                                  uint32_t slot_size) {
  if (!ValidGeometry(capacity, slot_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring of ", capacity, " slots of ", slot_size,
        " bytes: need a power-of-two capacity and slots of 16 bytes to 1 MiB, multiples of 8"));
  }
  if (memory == nullptr || bytes < RingBytes(capacity, slot_size) ||
      reinterpret_cast<uintptr_t>(memory) % alignof(RingHeader) != 0) {
    return absl::InvalidArgumentError("ring memory is too small or misaligned");
  }
  auto* header = new (memory) RingHeader();
  header->magic = kRingMagic;
  header->capacity = capacity;
  header->slot_size = slot_size;
  header->head.store(0, std::memory_order_relaxed);
  header->tail.store(0, std::memory_order_relaxed);
  header->consumer_sleeping.store(0, std::memory_order_release);
  // Every slot empty (word 0).
  std::memset(static_cast<uint8_t*>(memory) + sizeof(RingHeader), 0,
              static_cast<size_t>(capacity) * slot_size);
  return absl::OkStatus();
}

absl::StatusOr<SpscRing> SpscRing::Attach(void* memory, size_t bytes, uint32_t capacity,
                                          uint32_t slot_size) {
  if (!ValidGeometry(capacity, slot_size) || memory == nullptr ||
      bytes < RingBytes(capacity, slot_size) ||
      reinterpret_cast<uintptr_t>(memory) % alignof(RingHeader) != 0) {
    return absl::InvalidArgumentError("ring memory does not fit the expected geometry");
  }
  auto* header = static_cast<RingHeader*>(memory);
  if (header->magic != kRingMagic) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the ring's layout (magic 0x%08x) is not this side's (0x%08x): the client library and "
        "axond come from different axon versions",
        header->magic, kRingMagic));
  }
  if (header->capacity != capacity || header->slot_size != slot_size) {
    return absl::InvalidArgumentError("the ring header does not match the expected geometry");
  }
  return SpscRing(header, static_cast<uint8_t*>(memory) + sizeof(RingHeader), capacity, slot_size);
}

absl::StatusOr<bool> SpscRing::TryPush(absl::Span<const uint8_t> message) {
  if (message.size() > max_message()) {
    return absl::InvalidArgumentError(
        absl::StrCat("message of ", message.size(), " bytes; a slot holds ", max_message()));
  }
  const uint64_t tail = header_->tail.load(std::memory_order_relaxed);
  if (tail - head_seen_ >= capacity_) {  // looks full (or stale): where is the consumer?
    const uint64_t head = header_->head.load(std::memory_order_acquire);
    if (tail - head > capacity_) return Corrupt(head, tail);
    head_seen_ = head;
    if (tail - head == capacity_) return false;
  }
  // The consumer cleared this slot's word before it moved past it (and the
  // head we read says it has).
  uint8_t* slot = Slot(tail);
  if (!message.empty()) std::memcpy(slot + sizeof(uint32_t), message.data(), message.size());
  Word(slot).store(static_cast<uint32_t>(message.size()) + 1, std::memory_order_release);
  header_->tail.store(tail + 1, std::memory_order_release);
  return true;
}

bool SpscRing::ConsumerNeedsWakeup() const {
  // Orders the tail store before reading the flag; pairs with PrepareToSleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return header_->consumer_sleeping.load(std::memory_order_relaxed) != 0;
}

absl::StatusOr<int64_t> SpscRing::TryPop(absl::Span<uint8_t> out) {
  // The head is ours; the slot says whether the producer filled it. The tail
  // is not read here, so a hostile one cannot lead the consumer astray.
  const uint64_t head = header_->head.load(std::memory_order_relaxed);
  uint8_t* slot = Slot(head);
  const uint32_t word = Word(slot).load(std::memory_order_acquire);
  if (word == 0) return -1;
  const uint32_t length = word - 1;
  if (length > max_message()) {
    return absl::DataLossError(
        absl::StrCat("a slot claims ", length, " bytes; slots hold ", max_message()));
  }
  if (out.size() < length) {
    return absl::InvalidArgumentError("the output buffer is smaller than the message");
  }
  if (length > 0) std::memcpy(out.data(), slot + sizeof(uint32_t), length);
  // Empty again before the producer may see the head move past it.
  Word(slot).store(0, std::memory_order_relaxed);
  header_->head.store(head + 1, std::memory_order_release);
  return static_cast<int64_t>(length);
}

bool SpscRing::PrepareToSleep() {
  header_->consumer_sleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (header_->tail.load(std::memory_order_acquire) !=
      header_->head.load(std::memory_order_relaxed)) {
    header_->consumer_sleeping.store(0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void SpscRing::Awake() {
  // Called on every poll: a store each time would take the cache line from
  // the producer, which reads the flag after every push.
  if (header_->consumer_sleeping.load(std::memory_order_relaxed) != 0) {
    header_->consumer_sleeping.store(0, std::memory_order_relaxed);
  }
}

uint64_t SpscRing::size() const {
  return header_->tail.load(std::memory_order_acquire) -
         header_->head.load(std::memory_order_acquire);
}

}  // namespace axon::ring
