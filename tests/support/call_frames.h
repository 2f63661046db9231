// Test support for the call frame codec (common/wire/call.h), shared by
// call_frame_test and call_frame_decode_test: varied requests and replies
// encoded into whole messages, and a second, independent rendering of the
// layout, written by hand, for frames the encoder must match byte for byte and
// malformed ones the encoder would never write.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/tensor/tensor_desc.h"
#include "common/wire/call.h"

namespace axon::wire::testing_frames {

inline Device Cuda(int ordinal = 0) {
  return Device{.kind = DeviceKind::kCuda, .ordinal = ordinal, .pci_bus_id = "0000:3b:00.0"};
}

inline CallTensor Make(DType dtype, std::vector<int64_t> shape, Placement placement,
                       Device device = {}) {
  CallTensor t;
  t.desc = *TensorDesc::Contiguous(dtype, shape, std::move(device));
  if (t.desc.device.kind == DeviceKind::kCuda) t.desc.memory = MemoryKind::kCudaIpc;
  t.bytes = *TensorBytes(t.desc);
  t.placement = placement;
  return t;
}

// Tensor `i` of a varied call: GPU tensors travel separately, host ones
// inline; some with strides, scalars, empty tensors.
inline CallTensor Varied(size_t i) {
  const bool gpu = i % 3 == 0;
  std::vector<int64_t> shape = {static_cast<int64_t>(i % 5 + 1), 3,
                                static_cast<int64_t>(i % 2 + 1)};
  if (i % 7 == 2) shape = {};
  if (i % 7 == 5) shape = {0, 4};
  CallTensor t = Make(i % 2 == 0 ? dtype::kBFloat16 : dtype::kFloat32, shape,
                      gpu ? Placement::kSeparate : Placement::kInline,
                      gpu ? Cuda(static_cast<int>(i % 8)) : Device{});
  if (i % 4 == 1 && t.desc.ndim == 3) {
    t.desc.has_strides = true;
    t.desc.strides = {3 * shape[2], shape[2], 1};
  }
  if (i % 5 == 4) t.desc.memory = gpu ? MemoryKind::kCudaVmm : MemoryKind::kHostOther;
  t.desc.byte_offset = i * 4096;
  return t;
}

inline CallFrame Request(size_t tensors) {
  CallFrame f;
  f.kind = CallKind::kRequest;
  f.flags = 5;
  f.call_id = 0x123456789abc;
  f.timeout_ms = 2500;
  f.method = "model.Generate";
  f.reply_room = 65536;
  f.reply_apart = 0x8000000000000005;
  static const uint8_t kHeader[] = {'k', '=', 'v', 0, 0xff};
  f.header = kHeader;
  for (size_t i = 0; i < tensors; ++i) f.tensors.push_back(Varied(i));
  return f;
}

inline CallFrame Reply(size_t tensors) {
  CallFrame f = Request(tensors);
  f.kind = CallKind::kReply;
  f.method = {};
  f.reply_room = 0;  // requests only
  f.reply_apart = 0;
  f.code = static_cast<uint32_t>(absl::StatusCode::kNotFound);
  f.message = "no such model";
  return f;
}

// The whole message: the frame, then the inline tensors' bytes (a pattern).
inline std::vector<uint8_t> Message(CallFrame& f) {
  const auto size = CallFrameSize(f);
  EXPECT_TRUE(size.ok()) << size.status();
  const uint64_t total = InlineLayout(f, *size);
  std::vector<uint8_t> m(total, 0xee);
  const auto written = EncodeCallFrame(f, absl::MakeSpan(m));
  EXPECT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, *size);
  for (const CallTensor& t : f.tensors) {
    if (t.placement != Placement::kInline) continue;
    for (uint64_t b = 0; b < t.bytes; ++b) m[t.inline_offset + b] = static_cast<uint8_t>(b * 7);
  }
  return m;
}

// A second rendering of the layout in call.h, written from its comment
// rather than from call.cc: frames the encoder must match byte for byte, and
// malformed ones only a hand can write.
class Raw {
 public:
  Raw& U8(uint8_t v) { return Le(v, 1); }
  Raw& U16(uint16_t v) { return Le(v, 2); }
  Raw& U32(uint32_t v) { return Le(v, 4); }
  Raw& U64(uint64_t v) { return Le(v, 8); }
  Raw& Str(const std::string& s) {
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  // magic through timeout_ms; frame_length is filled in by Done().
  static Raw Head(uint8_t kind, uint64_t call_id = 9, uint32_t timeout_ms = 0) {
    Raw r;
    r.U32(0x31435841).U16(2).U8(kind).U8(0).U32(0).U64(call_id).U32(timeout_ms);
    return r;
  }
  // A request for "m" with no header, up to the tensor count.
  static Raw Request() {
    Raw r = Head(1);
    r.U16(1).Str("m").U32(65536).U64(0).U32(0);
    return r;
  }
  // Sets frame_length to the bytes so far; the message is `message_size`
  // bytes (the frame alone when smaller).
  std::vector<uint8_t> Done(size_t message_size = 0) {
    std::vector<uint8_t> m = b_;
    const auto n = static_cast<uint32_t>(m.size());
    for (int i = 0; i < 4; ++i) m[8 + i] = static_cast<uint8_t>(n >> (8 * i));
    if (m.size() < message_size) m.resize(message_size);
    return m;
  }

 private:
  Raw& Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  std::vector<uint8_t> b_;
};

// One tensor entry, every field free: float32[4] on the host, separate.
struct RawTensor {
  uint8_t code = 2;
  uint8_t bits = 32;
  uint16_t lanes = 1;
  uint8_t ndim = 1;
  uint8_t has_strides = 0;
  uint8_t device = 1;
  uint8_t memory = 1;
  uint32_t ordinal = 0xffffffff;
  std::string bus_id;
  std::vector<int64_t> shape = {4};
  std::vector<int64_t> strides;
  uint64_t byte_offset = 0;
  uint64_t bytes = 16;
  uint8_t placement = 2;
  uint64_t inline_offset = 0;

  void To(Raw& r) const {
    r.U8(code).U8(bits).U16(lanes).U8(ndim).U8(has_strides).U8(device).U8(memory).U32(ordinal);
    r.U8(static_cast<uint8_t>(bus_id.size())).Str(bus_id);
    for (int64_t s : shape) r.U64(static_cast<uint64_t>(s));
    for (int64_t s : strides) r.U64(static_cast<uint64_t>(s));
    r.U64(byte_offset).U64(bytes).U8(placement).U64(inline_offset);
  }
};

}  // namespace axon::wire::testing_frames
