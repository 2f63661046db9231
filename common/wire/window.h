// One-sided transfers: the window descriptor a client hands to others, and
// the operation list libaxon writes into registered memory for each Write or
// Read (a kWrite / kRead ring entry names the list). The daemon reads the
// list from memory the client can change under it: the decoder copies it out
// first and trusts no count or length.
//
// Descriptor, version 1 (little endian), what Expose returns:
//   u32 magic 'AXW1' | u64 window id | u64 length | u8 capability[16]
//   | u8 access (kWindowRead | kWindowWrite) | u16 length + node name
//
// Operation list (little endian, 8-byte aligned in the client's region):
//   u32 magic 'AXL1' | u32 count (1 to kMaxWindowBlocks)
//   u64 window id | u8 capability[16]
//   u64 notify tag | u32 notify length | u32 flags (kListNotify: a notification)
//   u64 window length (as the descriptor says: the initiator's daemon checks
//   blocks against it before they leave; the owner's checks the truth)
//   count x { u64 region | u64 offset | u64 window offset | u64 length }
//   notify length bytes of notification
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/wire/handshake.h"  // kMaxNodeName

namespace axon::wire {

inline constexpr uint32_t kWindowMagic = 0x31575841;      // "AXW1"
inline constexpr uint32_t kWindowListMagic = 0x314c5841;  // "AXL1"
inline constexpr size_t kCapabilityBytes = 16;
inline constexpr size_t kMaxWindowBlocks = 65536;
inline constexpr size_t kMaxNotifyBytes = 4096;

// What a window lets others do.
inline constexpr uint8_t kWindowRead = 1;
inline constexpr uint8_t kWindowWrite = 2;

// Operation list flags.
inline constexpr uint32_t kListNotify = 1;  // the operation carries a notification

using Capability = std::array<uint8_t, kCapabilityBytes>;

struct WindowDescriptor {
  std::string node;
  uint64_t id = 0;
  uint64_t length = 0;
  Capability capability{};
  uint8_t access = kWindowRead | kWindowWrite;
};

std::string EncodeWindowDescriptor(const WindowDescriptor& window);
absl::StatusOr<WindowDescriptor> DecodeWindowDescriptor(absl::string_view bytes);

// One block of a Write or Read: bytes [offset, offset + length) of the
// initiator's region `region`, and where they go in (or come from) the window.
struct WindowBlock {
  uint64_t region = 0;
  uint64_t offset = 0;
  uint64_t window_offset = 0;
  uint64_t length = 0;
};

struct WindowOpList {
  uint64_t window = 0;
  uint64_t window_length = 0;
  Capability capability{};
  bool notify = false;
  uint64_t notify_tag = 0;
  uint32_t notify_length = 0;
  std::vector<WindowBlock> blocks;
  // Where the notification's bytes start, from the start of the list.
  uint64_t notify_offset() const { return kHeaderBytes + blocks.size() * kBlockBytes; }

  static constexpr size_t kHeaderBytes = 56;
  static constexpr size_t kBlockBytes = 32;
};

// The list's size for `blocks` blocks and `notify` bytes of notification.
inline constexpr size_t WindowOpListBytes(size_t blocks, size_t notify) {
  return WindowOpList::kHeaderBytes + blocks * WindowOpList::kBlockBytes + notify;
}

// Writes `list` and `notify` (its notify_length bytes) to `out`, which holds
// WindowOpListBytes(list.blocks.size(), notify.size()) bytes.
void EncodeWindowOpList(const WindowOpList& list, absl::Span<const uint8_t> notify, uint8_t* out);
// Reads a list of exactly `bytes.size()` bytes (the notification's bytes
// stay where they are: notify_offset() says where).
absl::StatusOr<WindowOpList> DecodeWindowOpList(absl::Span<const uint8_t> bytes);

}  // namespace axon::wire
