// One-sided transfers: the window descriptor a client hands to others, and
// the operation list libaxon writes into registered memory for each Write or
// Read (a kWrite / kRead ring entry names the list). The daemon reads the
// list from memory the client can change under it: the decoder copies it out
// first and trusts no count or length.
//
// Descriptor, version 1 (little endian), what Expose returns:
//   u32 magic 'AXW1' | u64 window id | u64 length | u8 capability[16]
//   | u8 access (kWindowRead | kWindowWrite, and kWindowRma) | u16 length
//   + node name
//
// Operation list (little endian, 8-byte aligned in the client's region):
//   u32 magic 'AXL1' | u32 count (1 to kMaxWindowBlocks)
//   u64 window id | u8 capability[16]
//   u64 notify tag | u32 notify length
//   | u32 flags (kListNotify: a notification; kListRma: the descriptor said
//     kWindowRma)
//   u64 window length (as the descriptor says: the initiator's daemon checks
//   blocks against it before they leave; the owner's checks the truth)
//   count x { u64 region | u64 offset | u64 window offset | u64 length }
//   notify length bytes of notification
//
// RMA request (the payload of a kRmaWrite / kRmaRead frame, daemon to
// daemon): the initiator's blocks as the owner's daemon reaches them with
// UCX RMA, by address in the initiator's daemon and a packed remote key.
//   u32 magic 'AXR1' | u32 key count (1 to kMaxRmaKeys)
//   | u32 block count (1 to kMaxRmaBlocks) | u32 flags (kRmaNotify)
//   key count x { u32 length (1 to kMaxRmaKeyBytes) | the key | zero padding
//                 to 8 bytes }
//   block count x { u64 window offset | u64 address | u64 length | u32 key
//                   index | u32 reserved (0) }
//   with kRmaNotify, the operation's notification, which the owner's daemon
//   delivers once the blocks are in place (the request is answered when it
//   lands): u64 tag | u32 length (to kMaxNotifyBytes) | u32 reserved (0)
//   | the bytes | zero padding to 8 bytes
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
// Not a permission: the owner's daemon serves this window's transfers from
// other daemons by UCX RMA (host memory, RMA on).
inline constexpr uint8_t kWindowRma = 4;

// Operation list flags.
inline constexpr uint32_t kListNotify = 1;  // the operation carries a notification
inline constexpr uint32_t kListRma = 2;     // the window's descriptor said kWindowRma

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
  bool rma = false;  // kListRma
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

inline constexpr uint32_t kRmaMagic = 0x31525841;  // "AXR1"
inline constexpr size_t kMaxRmaKeys = 64;
inline constexpr size_t kMaxRmaKeyBytes = 4096;
inline constexpr size_t kMaxRmaBlocks = 4096;  // per request frame
inline constexpr uint32_t kRmaNotify = 1;      // a notification follows the blocks

// One block of an RMA request: `length` bytes at `address` in the
// initiator's daemon, reached with key `key`, and where they go in (or come
// from) the window.
struct RmaBlock {
  uint64_t window_offset = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  uint32_t key = 0;
};

struct RmaRequest {
  std::vector<std::vector<uint8_t>> keys;
  std::vector<RmaBlock> blocks;
  bool notify = false;
  uint64_t notify_tag = 0;
  std::string notify_bytes;
};

std::vector<uint8_t> EncodeRmaRequest(const RmaRequest& request);
// Checks counts, key lengths and indexes, and that no block's address range
// wraps; not the window bounds (the owner's WindowTable does).
absl::StatusOr<RmaRequest> DecodeRmaRequest(absl::Span<const uint8_t> bytes);

}  // namespace axon::wire
