// The call frame: what a call's request and its reply carry besides tensor
// bytes. libaxon writes it straight into registered memory and the other
// side reads it where it landed (a receive-area slot), so encoding and
// decoding take no heap allocation for up to kInlineTensors tensors. The
// decoder trusts no length, count or offset it is given.
//
// A call message is the frame, then the bytes of the tensors that travel
// inline, each at the offset its entry names (from the start of the
// message, 64-byte aligned). Tensors that do not travel inline (GPU tensors,
// and host tensors too large to inline) follow as messages of their own,
// tagged CallTensorTag(call_id, index), and land in memory the receiver
// chose for them.
//
// Layout, version 2 (little endian):
//   u32 magic 'AXC1' | u16 version | u8 kind | u8 flags | u32 frame_length
//   u64 call_id | u32 timeout_ms
//   kind request: u16 length + method (1 to kMaxMethodName bytes)
//                 | u32 reply_room | u64 reply_apart
//   kind reply:   u32 status code (absl::StatusCode) | u16 length + message
//                 (at most kMaxStatusMessage bytes)
//   u32 header_length + header bytes (at most kMaxCallHeader)
//   u16 tensor count (at most kMaxCallTensors), then per tensor:
//     u8 dtype code | u8 dtype bits | u16 dtype lanes | u8 ndim | u8 has_strides
//     u8 device kind | u8 memory kind | i32 device ordinal
//     u8 length + PCI bus id (at most 31 bytes)
//     i64 shape[ndim] | i64 strides[ndim] (only when has_strides)
//     u64 byte_offset | u64 bytes | u8 placement | u64 inline_offset
//   frame_length covers all of the above; inline tensor bytes follow it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tensor/tensor_desc.h"
#include "common/wire/data.h"  // kMaxStatusMessage, shared with data acks
#include "common/wire/ring_ops.h"

namespace axon::wire {

inline constexpr uint32_t kCallMagic = 0x31435841;  // "AXC1" in little endian
inline constexpr uint16_t kCallVersion = 2;
inline constexpr size_t kMaxMethodName = 128;
inline constexpr size_t kMaxCallHeader = 64 * 1024;
inline constexpr size_t kMaxCallTensors = 128;
inline constexpr size_t kInlineTensors = 8;  // tensors a frame holds without allocating
inline constexpr size_t kCallAlign = 64;     // inline tensors start at multiples of this

enum class CallKind : uint8_t { kRequest = 1, kReply = 2 };

// Whether bit `i` of a reply_apart mask is set (tensors past the 64th never are).
inline constexpr bool ReplyTensorApart(uint64_t mask, size_t i) {
  return i < 64 && ((mask >> i) & 1) != 0;
}

enum class Placement : uint8_t {
  kInline = 1,    // in this message, at inline_offset
  kSeparate = 2,  // its own message, tagged CallTensorTag(call_id, index)
};

struct CallTensor {
  TensorDesc desc;
  uint64_t bytes = 0;  // TensorBytes(desc): checked by the decoder
  Placement placement = Placement::kInline;
  uint64_t inline_offset = 0;  // kInline: from the start of the message
};

// A decoded frame's strings and header are views into the decoded bytes.
struct CallFrame {
  CallKind kind = CallKind::kRequest;
  uint8_t flags = 0;
  uint32_t frame_length = 0;  // set by the encoder and the decoder
  uint64_t call_id = 0;
  uint32_t timeout_ms = 0;   // requests: what is left of the caller's deadline; 0: none
  absl::string_view method;  // requests
  // Requests: the bytes the caller's buffer for the reply message holds
  // (frame and inline tensors); the server sends what does not fit apart.
  uint32_t reply_room = 0;
  // Requests: bit i set: the caller posted a receive for reply tensor i (a
  // tensor of CallOptions::reply_into that the daemon writes in place), so
  // the server sends it apart whatever its size. Flags are none so far
  // (sent 0, not checked).
  uint64_t reply_apart = 0;
  uint32_t code = 0;          // replies: absl::StatusCode
  absl::string_view message;  // replies: the error's text (truncated to kMaxStatusMessage)
  absl::Span<const uint8_t> header;
  absl::InlinedVector<CallTensor, kInlineTensors> tensors;
};

// Tags of call traffic. Every tag with kCallTagBit set is reserved for
// calls; with kDirectedTagBit set (ring_ops.h), a message waits for a posted
// receive and never lands in a receive area.
inline constexpr uint64_t kCallTagBit = uint64_t{1} << 62;
// Requests: to the server's endpoint, landing in its receive area.
inline constexpr uint64_t kCallRequestTag = kCallTagBit | 0x43414c4cull;  // "CALL"
// The reply to `call_id` (call ids are below 2^48).
inline constexpr uint64_t CallReplyTag(uint64_t call_id) {
  return kDirectedTagBit | kCallTagBit | kPostedOnlyTagBit | (uint64_t{1} << 56) |
         (call_id & ((uint64_t{1} << 48) - 1));
}
// Tensor `index` of the request (reply = false) or reply of `call_id`.
inline constexpr uint64_t CallTensorTag(uint64_t call_id, size_t index, bool reply) {
  return kDirectedTagBit | kCallTagBit | (uint64_t{reply ? 3u : 2u} << 56) |
         (uint64_t{index & 0xff} << 48) | (call_id & ((uint64_t{1} << 48) - 1));
}
inline constexpr uint64_t kMaxCallId = (uint64_t{1} << 48) - 1;

// The frame's size in bytes (what EncodeCallFrame writes), or
// INVALID_ARGUMENT for a frame that breaks a limit above (method empty or too
// long, header too long, too many tensors, a descriptor ValidateTensorDesc
// refuses, bytes that disagree with the descriptor).
absl::StatusOr<size_t> CallFrameSize(const CallFrame& frame);
// Writes `frame` at the start of `out` (at least CallFrameSize bytes) and
// returns the bytes written. Inline tensors' offsets are the caller's to
// set (InlineLayout does it).
absl::StatusOr<size_t> EncodeCallFrame(const CallFrame& frame, absl::Span<uint8_t> out);
// Gives each kInline tensor of `frame` its offset after a frame of
// `frame_size` bytes, kCallAlign-aligned, in order; returns the message's
// total size (frame plus inline bytes).
uint64_t InlineLayout(CallFrame& frame, size_t frame_size);
// Decodes the frame at the start of `message` (the whole message: inline
// tensors are checked to lie inside it, in order and without overlap).
// INVALID_ARGUMENT saying what is wrong for anything malformed, including an
// unknown version ("call frame version 7, this build speaks 1"). `out`'s
// views point into `message`.
absl::Status DecodeCallFrame(absl::Span<const uint8_t> message, CallFrame& out);

}  // namespace axon::wire
