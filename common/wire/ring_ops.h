// What travels on the shared-memory rings between libaxon and axond: fixed
// submission entries (client -> daemon) and completion entries (daemon ->
// client), and the geometry both sides agree on. Entries are read from
// memory the other side can write: decoders copy them out and check them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace axon::wire {

// Both rings: kRingSlots slots of kRingSlotSize bytes, the submission ring at
// offset 0 of the rings memfd and the completion ring right after it.
inline constexpr uint32_t kRingSlots = 1024;
inline constexpr uint32_t kRingSlotSize = 256;
inline constexpr size_t kEndpointNameSize = 64;  // NUL-padded, at most 63 chars
inline constexpr size_t kAddressSize = 128;      // "node/endpoint", NUL-padded

enum class RingOp : uint16_t {
  kNop = 1,       // completes at once: the round trip of the per-message path
  kSend = 2,      // region bytes -> the endpoint `peer` on this node, with `tag`
  kPostRecv = 3,  // a buffer for the next message to `endpoint` with `tag` (from `peer`)
  kCancel = 4,    // withdraw pending operation `target` of this session
  kSetArea = 5,   // region `region` becomes the receive area, in slots of `slot_size` bytes
  kRelease = 6,   // the client is done with receive-area slot `slot` (no completion)
  kClaim = 7,     // receive-area slot `slot` is still the client's: it held it across a
                  // restart of the daemon, which must not land a message there (no completion)
  kWrite = 8,     // one-sided: the operation list (common/wire/window.h) at `region`,
                  // `offset`, `length` bytes, from `endpoint` to a window on node `peer`
                  // (empty: this node)
  kRead = 9,      // the same, reading from the window
};
inline constexpr uint16_t kMaxRingOp = 9;

// Submission flags.
inline constexpr uint16_t kSubmissionMore = 1;   // kSend: one part; the message goes on in
                                                 // the next entry (same session, back to back)
inline constexpr uint16_t kSubmissionQuiet = 2;  // kSend: no completion when it succeeds (a
                                                 // call's request, whose reply says it arrived);
                                                 // a failure completes it, kCompletionQuiet set.
                                                 // Only where the daemon offers it (Attach).
inline constexpr size_t kMaxSendParts = 64;

// A message whose tag has this bit waits for a receive posted for it and
// never lands in a receive area: calls send tensors with such tags to
// memory the receiver picks once it has read the call (common/wire/call.h).
inline constexpr uint64_t kDirectedTagBit = uint64_t{1} << 63;
// A message whose tag has this bit (and kDirectedTagBit) fails NOT_FOUND at
// once when no receive is posted for it as it arrives: a call's reply, whose
// receive the caller posts before it sends the request, so that a reply to a
// caller who gave up is refused at once instead of waiting for nothing.
inline constexpr uint64_t kPostedOnlyTagBit = uint64_t{1} << 61;

// Completion flags.
inline constexpr uint32_t kCompletionArrival = 1;  // a message landed in the receive area
inline constexpr uint32_t kCompletionQuiet = 2;    // the failure of a kSubmissionQuiet send

// Entries carry some fields only for some operations. Those share storage,
// as in io_uring's entries, and each field's name has one meaning: which
// one an entry carries is decided by its `op` (or, for a completion, its
// flags), never by how a value reads.
struct Submission {
  uint16_t op = 0;
  uint16_t flags = 0;
  uint32_t timeout_ms = 0;  // kSend, kPostRecv: fail DEADLINE_EXCEEDED after this; 0: never
  uint64_t op_id = 0;
  union {
    uint64_t region = 0;  // kSend, kPostRecv, kSetArea, kWrite, kRead: the session's region id
    uint64_t target;      // kCancel: the op id of the operation to withdraw
    uint64_t slot;        // kRelease, kClaim: a receive-area slot
  };
  uint64_t offset = 0;  // kSend, kPostRecv, kWrite, kRead: within the region
  union {
    uint64_t length = 0;  // kSend, kPostRecv, kWrite, kRead: bytes from `offset`
    uint64_t slot_size;   // kSetArea: bytes per slot
  };
  uint64_t tag = 0;
  char endpoint[kEndpointNameSize] = {};  // the session's own endpoint
  // kSend: the destination, "endpoint" or "node/endpoint". kPostRecv: the
  // only sender whose message may match (same form); empty: any sender.
  char peer[kAddressSize] = {};
};

inline constexpr size_t kCompletionMessageSize = 200;

// What a kCompletionArrival says besides its length and tag.
// No member initializers: it lives in a union (Completion zero-fills it).
struct Arrival {
  uint64_t slot;                     // the receive-area slot it landed in
  char endpoint[kEndpointNameSize];  // the receiving endpoint, NUL-padded
  char source[kAddressSize];         // the sender, "node/endpoint", NUL-padded
};
static_assert(sizeof(Arrival) == kCompletionMessageSize);

struct Completion {
  uint64_t op_id = 0;   // the operation completed; 0 for an arrival
  uint32_t code = 0;    // absl::StatusCode
  uint32_t flags = 0;   // kCompletion*
  uint64_t length = 0;  // kPostRecv, arrivals: bytes received
  uint64_t tag = 0;
  union {
    char message[kCompletionMessageSize] = {};  // a failure: why, NUL-padded (truncated)
    Arrival arrival;                            // kCompletionArrival
  };
};

// Both fit a ring slot (which keeps 4 bytes for the entry's length).
static_assert(sizeof(Submission) <= kRingSlotSize - sizeof(uint32_t));
static_assert(sizeof(Completion) <= kRingSlotSize - sizeof(uint32_t));

// Whether `c` carries more than its first 32 bytes: text or an arrival.
inline bool CompletionIsLong(const Completion& c) {
  return (c.flags & kCompletionArrival) != 0 || (c.code != 0 && c.message[0] != '\0');
}
// A completion without error text or arrival travels without the rest (the
// common case: 32 bytes instead of 232).
inline constexpr size_t kCompletionShortSize = offsetof(Completion, message);
inline absl::Span<const uint8_t> CompletionBytes(const Completion& c) {
  return {reinterpret_cast<const uint8_t*>(&c),
          CompletionIsLong(c) ? sizeof(c) : kCompletionShortSize};
}
// CompletionBytes(Completion{.op_id, .length, .tag}), an OK one without
// flags, written without building (and zero-filling) the whole Completion:
// the engine sends one for nearly every operation.
inline std::array<uint8_t, kCompletionShortSize> OkCompletionBytes(uint64_t op_id, uint64_t length,
                                                                   uint64_t tag) {
  std::array<uint8_t, kCompletionShortSize> bytes{};
  std::memcpy(bytes.data() + offsetof(Completion, op_id), &op_id, sizeof(op_id));
  std::memcpy(bytes.data() + offsetof(Completion, length), &length, sizeof(length));
  std::memcpy(bytes.data() + offsetof(Completion, tag), &tag, sizeof(tag));
  return bytes;
}
inline std::optional<Completion> ReadCompletion(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kCompletionShortSize && bytes.size() != sizeof(Completion)) {
    return std::nullopt;
  }
  Completion c;  // message zeroed: stays so for a short one
  std::memcpy(&c, bytes.data(), bytes.size());
  return c;
}

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

// A name field from shared memory: at most N - 1 bytes, stopping at NUL.
// The view is of `field` itself.
// memchr, not a loop over bytes: two names per send (about 150 instructions
// a message in callgrind, byte by byte).
template <size_t N>
absl::string_view NameView(const char (&field)[N]) {
  const void* nul = std::memchr(field, '\0', N - 1);
  return absl::string_view(field, nul == nullptr ? N - 1 : static_cast<const char*>(nul) - field);
}
template <size_t N>
std::string NameField(const char (&field)[N]) {
  return std::string(NameView(field));
}

// False when `name` does not fit.
template <size_t N>
bool SetNameField(char (&field)[N], absl::string_view name) {
  std::memset(field, 0, N);
  if (name.size() >= N) return false;
  std::memcpy(field, name.data(), name.size());
  return true;
}

static_assert(sizeof(Submission) + sizeof(uint32_t) <= kRingSlotSize);
static_assert(sizeof(Completion) + sizeof(uint32_t) <= kRingSlotSize);

}  // namespace axon::wire
