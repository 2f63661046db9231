// What travels on the shared-memory rings between libaxon and axond: fixed
// submission entries (client -> daemon) and completion entries (daemon ->
// client), and the geometry both sides agree on. Entries are read from
// memory the other side can write: decoders copy them out and check them.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/types/span.h"

namespace axon::wire {

// Both rings: kRingSlots slots of kRingSlotSize bytes, the submission ring at
// offset 0 of the rings memfd and the completion ring right after it.
inline constexpr uint32_t kRingSlots = 1024;
inline constexpr uint32_t kRingSlotSize = 128;

enum class RingOp : uint16_t {
  kNop = 1,  // completes at once: the round trip of the per-message path
};

struct Submission {
  uint16_t op = 0;
  uint16_t flags = 0;
  uint32_t reserved = 0;
  uint64_t op_id = 0;
};

struct Completion {
  uint64_t op_id = 0;
  uint32_t code = 0;  // absl::StatusCode
  uint32_t reserved = 0;
  uint64_t value = 0;
};

template <typename Entry>
absl::Span<const uint8_t> EntryBytes(const Entry& entry) {
  return {reinterpret_cast<const uint8_t*>(&entry), sizeof(entry)};
}

template <typename Entry>
std::optional<Entry> ReadEntry(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != sizeof(Entry)) return std::nullopt;
  Entry entry;
  std::memcpy(&entry, bytes.data(), sizeof(entry));
  return entry;
}

}  // namespace axon::wire
