// The call frame codec (common/wire/call.h): round trips of requests and
// replies of 0 to 128 tensors, the layout byte for byte (against a second,
// independent rendering of it in this file), every malformed frame refused
// with a reason, and no heap allocation for frames of up to kInlineTensors
// tensors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tensor/tensor_desc.h"
#include "common/wire/call.h"

// Counts every allocation in the process, for the tests that the codec takes
// none. Not inlined: GCC would otherwise see free() meet operator new's
// pointer in its callers and warn of a mismatch.
namespace {
std::atomic<size_t> g_allocations{0};
}  // namespace

__attribute__((noinline)) void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace axon::wire {
namespace {

using ::testing::HasSubstr;

std::string Error(const absl::Status& st) { return std::string(st.message()); }

Device Cuda(int ordinal = 0) {
  return Device{.kind = DeviceKind::kCuda, .ordinal = ordinal, .pci_bus_id = "0000:3b:00.0"};
}

CallTensor Make(DType dtype, std::vector<int64_t> shape, Placement placement, Device device = {}) {
  CallTensor t;
  t.desc = *TensorDesc::Contiguous(dtype, shape, std::move(device));
  if (t.desc.device.kind == DeviceKind::kCuda) t.desc.memory = MemoryKind::kCudaIpc;
  t.bytes = *TensorBytes(t.desc);
  t.placement = placement;
  return t;
}

// Tensor `i` of a varied call: GPU tensors travel separately, host ones
// inline; some with strides, scalars, empty tensors.
CallTensor Varied(size_t i) {
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

CallFrame Request(size_t tensors) {
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

CallFrame Reply(size_t tensors) {
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
std::vector<uint8_t> Message(CallFrame& f) {
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

void ExpectSame(const CallFrame& got, const CallFrame& want) {
  EXPECT_EQ(got.kind, want.kind);
  EXPECT_EQ(got.flags, want.flags);
  EXPECT_EQ(got.call_id, want.call_id);
  EXPECT_EQ(got.timeout_ms, want.timeout_ms);
  EXPECT_EQ(got.method, want.method);
  EXPECT_EQ(got.reply_room, want.reply_room);
  EXPECT_EQ(got.reply_apart, want.reply_apart);
  EXPECT_EQ(got.code, want.code);
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(std::vector<uint8_t>(got.header.begin(), got.header.end()),
            std::vector<uint8_t>(want.header.begin(), want.header.end()));
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (size_t i = 0; i < got.tensors.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("tensor ", i));
    EXPECT_EQ(got.tensors[i].desc, want.tensors[i].desc);
    EXPECT_EQ(got.tensors[i].bytes, want.tensors[i].bytes);
    EXPECT_EQ(got.tensors[i].placement, want.tensors[i].placement);
    EXPECT_EQ(got.tensors[i].inline_offset, want.tensors[i].inline_offset);
  }
}

bool Inside(const void* p, const std::vector<uint8_t>& m) {
  const auto* b = static_cast<const uint8_t*>(p);
  return b >= m.data() && b <= m.data() + m.size();
}

class CallRoundTrip : public ::testing::TestWithParam<size_t> {};

TEST_P(CallRoundTrip, Request) {
  CallFrame f = Request(GetParam());
  const std::vector<uint8_t> m = Message(f);
  CallFrame got;
  ASSERT_TRUE(DecodeCallFrame(m, got).ok()) << DecodeCallFrame(m, got);
  ExpectSame(got, f);
  EXPECT_EQ(got.frame_length, *CallFrameSize(f));
  // The strings and header are views of the message, not copies.
  EXPECT_TRUE(Inside(got.method.data(), m));
  EXPECT_TRUE(Inside(got.header.data(), m));
}

TEST_P(CallRoundTrip, Reply) {
  CallFrame f = Reply(GetParam());
  const std::vector<uint8_t> m = Message(f);
  CallFrame got;
  ASSERT_TRUE(DecodeCallFrame(m, got).ok()) << DecodeCallFrame(m, got);
  ExpectSame(got, f);
  EXPECT_TRUE(got.method.empty());
  EXPECT_TRUE(Inside(got.message.data(), m));
}

INSTANTIATE_TEST_SUITE_P(Tensors, CallRoundTrip, ::testing::Values(0, 1, 8, 64, 128));

TEST(CallFrame, RoundTripOfEveryTensorShape) {
  CallFrame f = Request(0);
  // Eight dimensions with strides, a bus id of the longest kind, fp4 pairs.
  TensorDesc wide = *TensorDesc::Contiguous(dtype::kInt8, {2, 1, 2, 1, 2, 1, 2, 3});
  wide.has_strides = true;
  wide.strides = {24, 99, 12, -1, 6, 0, 3, 1};
  f.tensors.push_back(CallTensor{.desc = wide, .bytes = 48, .placement = Placement::kInline});
  f.tensors.push_back(
      Make(dtype::kFloat64, {3}, Placement::kSeparate,
           Device{.kind = DeviceKind::kCuda, .ordinal = 7, .pci_bus_id = std::string(31, 'b')}));
  f.tensors.push_back(Make(DType{DTypeCode::kFloat4_e2m1fn, 4, 2}, {5, 5}, Placement::kInline));
  f.tensors.push_back(Make(dtype::kFloat8E4M3Fn, {0}, Placement::kInline));
  const std::vector<uint8_t> m = Message(f);
  CallFrame got;
  ASSERT_TRUE(DecodeCallFrame(m, got).ok()) << DecodeCallFrame(m, got);
  ExpectSame(got, f);
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

std::vector<uint8_t> RequestWith(const std::vector<RawTensor>& tensors, size_t message_size = 0) {
  Raw r = Raw::Request();
  r.U16(static_cast<uint16_t>(tensors.size()));
  for (const RawTensor& t : tensors) t.To(r);
  return r.Done(message_size);
}

TEST(CallFrame, LayoutIsTheDocumentedOne) {
  CallFrame f;
  f.kind = CallKind::kRequest;
  f.flags = 3;
  f.call_id = 0x0102030405;
  f.timeout_ms = 1000;
  f.method = "ab";
  f.reply_room = 4096;
  f.reply_apart = 0x3;
  static const uint8_t kHeader[] = {9, 8, 7};
  f.header = kHeader;
  CallTensor gpu = Make(dtype::kBFloat16, {2, 3}, Placement::kSeparate, Cuda(1));
  gpu.desc.has_strides = true;
  gpu.desc.strides = {3, 1};
  gpu.desc.byte_offset = 256;
  f.tensors.push_back(gpu);
  f.tensors.push_back(Make(dtype::kUInt8, {5}, Placement::kInline));
  const std::vector<uint8_t> m = Message(f);

  Raw r = Raw::Head(1, 0x0102030405, 1000);
  std::vector<uint8_t> expected;
  {
    Raw body = r;
    body.U16(2).Str("ab").U32(4096).U64(3).U32(3).U8(9).U8(8).U8(7).U16(2);
    RawTensor{.code = 4,
              .bits = 16,
              .ndim = 2,
              .has_strides = 1,
              .device = 2,
              .memory = 3,
              .ordinal = 1,
              .bus_id = "0000:3b:00.0",
              .shape = {2, 3},
              .strides = {3, 1},
              .byte_offset = 256,
              .bytes = 12,
              .placement = 2}
        .To(body);
    // The frame is 177 bytes, so the inline tensor lands at 192.
    RawTensor{.code = 1, .bits = 8, .shape = {5}, .bytes = 5, .placement = 1, .inline_offset = 192}
        .To(body);
    expected = body.Done();
  }
  expected[7] = 3;  // flags
  ASSERT_EQ(*CallFrameSize(f), 177u) << "the test's arithmetic";
  expected.resize(192, 0xee);  // Message()'s padding
  for (int b = 0; b < 5; ++b) expected.push_back(static_cast<uint8_t>(b * 7));
  EXPECT_EQ(m, expected);
  EXPECT_EQ(std::vector<uint8_t>(m.begin(), m.begin() + 4),
            (std::vector<uint8_t>{'A', 'X', 'C', '1'}));
}

TEST(CallFrame, InlineLayoutAlignsEachInlineTensorInOrder) {
  CallFrame f;
  f.tensors.push_back(Make(dtype::kFloat32, {1}, Placement::kInline));    // 4 bytes
  f.tensors.push_back(Make(dtype::kFloat32, {9}, Placement::kSeparate));  // skipped
  f.tensors.push_back(Make(dtype::kUInt8, {64}, Placement::kInline));
  f.tensors.push_back(Make(dtype::kUInt8, {0}, Placement::kInline));  // empty
  f.tensors.push_back(Make(dtype::kUInt8, {1}, Placement::kInline));
  EXPECT_EQ(InlineLayout(f, 100), 257u);
  EXPECT_EQ(f.tensors[0].inline_offset, 128u);
  EXPECT_EQ(f.tensors[1].inline_offset, 0u);
  EXPECT_EQ(f.tensors[2].inline_offset, 192u);
  EXPECT_EQ(f.tensors[3].inline_offset, 256u);
  EXPECT_EQ(f.tensors[4].inline_offset, 256u);
  // An aligned frame size is where the first goes.
  EXPECT_EQ(InlineLayout(f, 128), 257u);
  EXPECT_EQ(f.tensors[0].inline_offset, 128u);

  CallFrame none;
  none.tensors.push_back(Make(dtype::kFloat32, {9}, Placement::kSeparate));
  EXPECT_EQ(InlineLayout(none, 77), 77u);
  CallFrame empty;
  EXPECT_EQ(InlineLayout(empty, 30), 30u);

  // Sizes that would wrap saturate instead, and the encoder refuses them.
  CallFrame huge = Request(0);
  huge.tensors.push_back(
      Make(dtype::kUInt8, {std::numeric_limits<int64_t>::max()}, Placement::kInline));
  huge.tensors.push_back(
      Make(dtype::kUInt8, {std::numeric_limits<int64_t>::max()}, Placement::kInline));
  huge.tensors.push_back(Make(dtype::kUInt8, {64}, Placement::kInline));
  const size_t size = *CallFrameSize(huge);
  EXPECT_EQ(InlineLayout(huge, size), std::numeric_limits<uint64_t>::max());
  std::vector<uint8_t> out(size);
  EXPECT_EQ(EncodeCallFrame(huge, absl::MakeSpan(out)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Every message decodes to INVALID_ARGUMENT with "malformed call frame: "
// and `why` in its text.
void ExpectMalformed(const std::vector<uint8_t>& m, const std::string& why) {
  CallFrame out;
  const absl::Status st = DecodeCallFrame(m, out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(Error(st), HasSubstr("malformed call frame: "));
  EXPECT_THAT(Error(st), HasSubstr(why));
}

TEST(CallFrameDecode, TheHandWrittenFramesAreValid) {
  // So that each refusal below is of the one field it changes.
  CallFrame out;
  const std::vector<uint8_t> request = RequestWith({RawTensor{}});
  ASSERT_TRUE(DecodeCallFrame(request, out).ok()) << DecodeCallFrame(request, out);
  EXPECT_EQ(out.method, "m");
  EXPECT_EQ(DescribeTensor(out.tensors[0].desc), "float32[4] host");
  Raw reply = Raw::Head(2);
  reply.U32(5).U16(2).Str("no").U32(0).U16(0);
  const std::vector<uint8_t> reply_bytes = reply.Done();
  ASSERT_TRUE(DecodeCallFrame(reply_bytes, out).ok());
  EXPECT_EQ(out.code, 5u);
  EXPECT_EQ(out.message, "no");
  const std::vector<uint8_t> inline_one =
      RequestWith({RawTensor{.placement = 1, .inline_offset = 128}}, 128 + 16);
  ASSERT_TRUE(DecodeCallFrame(inline_one, out).ok()) << DecodeCallFrame(inline_one, out);
}

TEST(CallFrameDecode, MagicVersionAndKind) {
  std::vector<uint8_t> m = RequestWith({});
  m[0] = 'X';
  ExpectMalformed(m, "magic");
  m = RequestWith({});
  m[4] = 7;
  ExpectMalformed(m, "call frame version 7, this build speaks 2");
  m = RequestWith({});
  m[6] = 3;
  ExpectMalformed(m, "unknown call kind 3");
  m[6] = 0;
  ExpectMalformed(m, "unknown call kind 0");
  ExpectMalformed({}, "ends inside magic");
  ExpectMalformed({0x41, 0x58, 0x43, 0x31, 1}, "ends inside version");
}

TEST(CallFrameDecode, FrameLengthMustBeTheFrame) {
  std::vector<uint8_t> m = RequestWith({RawTensor{}});
  m[8] = static_cast<uint8_t>(m.size() + 1);  // past the message
  ExpectMalformed(m, "past the end");
  m = RequestWith({RawTensor{}});
  m[8] = static_cast<uint8_t>(m.size() - 1);  // short of the frame
  ExpectMalformed(m, "ends inside tensor 0's inline offset");
  // Shorter than the fixed part already read (found by wire_fuzz: the
  // reader's end fell behind its cursor).
  for (uint8_t n = 0; n < 24; ++n) {
    m = RequestWith({RawTensor{}});
    m[8] = n;
    ExpectMalformed(m, absl::StrCat("frame_length ", n, " is shorter than the fixed 24 bytes"));
  }
  // Bytes inside the frame that no field covers.
  m = RequestWith({RawTensor{}});
  m.push_back(0);
  m[8] = static_cast<uint8_t>(m.size());
  ExpectMalformed(m, "the frame ends at byte");
  // ... while bytes after the frame are the message's (inline data).
  m = RequestWith({RawTensor{}}, 300);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(m, out).ok());
}

TEST(CallFrameDecode, CallIdAndStatusCode) {
  Raw r = Raw::Head(1, uint64_t{1} << 48);
  r.U16(1).Str("m").U32(0).U64(0).U32(0).U16(0);
  ExpectMalformed(r.Done(), "call id 281474976710656 is above 2^48 - 1");
  Raw reply = Raw::Head(2);
  reply.U32(17).U16(0).U32(0).U16(0);
  ExpectMalformed(reply.Done(), "status code 17 is not an absl::StatusCode");
}

TEST(CallFrameDecode, MethodName) {
  Raw empty = Raw::Head(1);
  empty.U16(0).U32(0).U16(0);
  ExpectMalformed(empty.Done(), "empty method name");
  Raw longest = Raw::Head(1);
  longest.U16(128).Str(std::string(128, 'm')).U32(0).U64(0).U32(0).U16(0);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(longest.Done(), out).ok());
  Raw too_long = Raw::Head(1);
  too_long.U16(129).Str(std::string(129, 'm')).U32(0).U64(0).U32(0).U16(0);
  ExpectMalformed(too_long.Done(), "method name of 129 bytes; at most 128");
  Raw truncated = Raw::Head(1);
  truncated.U16(100).Str("abc");
  ExpectMalformed(truncated.Done(), "ends inside method name (100 bytes needed, 3 left)");
}

TEST(CallFrameDecode, StatusMessage) {
  Raw longest = Raw::Head(2);
  longest.U32(2).U16(1024).Str(std::string(1024, 'e')).U32(0).U16(0);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(longest.Done(), out).ok());
  Raw too_long = Raw::Head(2);
  too_long.U32(2).U16(1025).Str(std::string(1025, 'e')).U32(0).U16(0);
  ExpectMalformed(too_long.Done(), "status message of 1025 bytes; at most 1024");
}

TEST(CallFrameDecode, Header) {
  Raw largest = Raw::Head(1);
  largest.U16(1).Str("m").U32(0).U64(0).U32(65536).Str(std::string(65536, 'h')).U16(0);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(largest.Done(), out).ok());
  EXPECT_EQ(out.header.size(), 65536u);
  Raw too_long = Raw::Head(1);
  too_long.U16(1).Str("m").U32(0).U64(0).U32(65537).Str(std::string(65537, 'h')).U16(0);
  ExpectMalformed(too_long.Done(), "header of 65537 bytes; at most 65536");
  Raw claims = Raw::Head(1);
  claims.U16(1).Str("m").U32(0).U64(0).U32(0xffff).Str("hh");
  ExpectMalformed(claims.Done(), "ends inside header");
}

TEST(CallFrameDecode, TensorCount) {
  std::vector<RawTensor> many(129);
  ExpectMalformed(RequestWith(many), "a call carries at most 128 tensors; this one has 129");
  many.resize(128);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(RequestWith(many), out).ok());
  EXPECT_EQ(out.tensors.size(), 128u);
  // A count the bytes do not back.
  Raw r = Raw::Request();
  r.U16(5);
  RawTensor{}.To(r);
  ExpectMalformed(r.Done(), "ends inside tensor 1's dtype code");
}

TEST(CallFrameDecode, DescriptorsGoThroughValidateTensorDesc) {
  ExpectMalformed(RequestWith({RawTensor{.code = 3}}), "tensor 0: unknown dtype code 3");
  ExpectMalformed(RequestWith({RawTensor{.bits = 12}}), "tensor 0: dtype float of 12 bits");
  ExpectMalformed(RequestWith({RawTensor{.lanes = 0}}), "0 lanes");
  ExpectMalformed(
      RequestWith(
          {RawTensor{},
           RawTensor{
               .ndim = 2, .has_strides = 1, .shape = {4, 2}, .strides = {1, 4}, .bytes = 32}}),
      "tensor 1: tensor strides [1, 4] are not contiguous for shape [4, 2] "
      "(expected [2, 1])");
  ExpectMalformed(RequestWith({RawTensor{.shape = {-4}}}), "negative extent");
  ExpectMalformed(
      RequestWith({RawTensor{.ndim = 2, .shape = {int64_t{1} << 40, int64_t{1} << 40}}}),
      "has more than 2^64 elements");
  ExpectMalformed(
      RequestWith({RawTensor{.ndim = 3, .shape = {int64_t{1} << 31, int64_t{1} << 31, 2}}}),
      "has more than 2^64 bytes");
  ExpectMalformed(RequestWith({RawTensor{.device = 2}}), "needs its PCI bus id");
  ExpectMalformed(RequestWith({RawTensor{.bus_id = "0000:3b:00.0"}}), "has no PCI bus id");
  ExpectMalformed(RequestWith({RawTensor{.device = 3}}), "unknown tensor device kind 3");
  ExpectMalformed(RequestWith({RawTensor{.memory = 9}}), "unknown tensor memory kind 9");
  ExpectMalformed(RequestWith({RawTensor{.ndim = 9, .shape = std::vector<int64_t>(9, 1)}}),
                  "tensor 0 has 9 dimensions; at most 8");
  ExpectMalformed(RequestWith({RawTensor{.has_strides = 2, .strides = {1}}}),
                  "has_strides is 2, neither 0 nor 1");
  ExpectMalformed(RequestWith({RawTensor{.device = 2, .bus_id = std::string(32, 'b')}}),
                  "PCI bus id is 32 bytes; at most 31");
  // The longest bus id is fine.
  CallFrame out;
  EXPECT_TRUE(
      DecodeCallFrame(RequestWith({RawTensor{.device = 2, .bus_id = std::string(31, 'b')}}), out)
          .ok());
}

TEST(CallFrameDecode, BytesMustBeTheDescriptors) {
  ExpectMalformed(RequestWith({RawTensor{.bytes = 15}}),
                  "tensor 0 says 15 bytes; float32[4] host has 16");
  ExpectMalformed(RequestWith({RawTensor{.bytes = 0}}), "says 0 bytes");
}

TEST(CallFrameDecode, Placement) {
  ExpectMalformed(RequestWith({RawTensor{.placement = 0}}), "tensor 0 has unknown placement 0");
  ExpectMalformed(RequestWith({RawTensor{.placement = 3}}), "unknown placement 3");
  ExpectMalformed(RequestWith({RawTensor{.placement = 2, .inline_offset = 64}}),
                  "tensor 0 travels separately but has inline offset 64");
}

TEST(CallFrameDecode, InlineOffsets) {
  // The frame of one tensor is 91 bytes; of two, 137.
  ASSERT_EQ(RequestWith({RawTensor{}}).size(), 91u);
  ASSERT_EQ(RequestWith({RawTensor{}, RawTensor{}}).size(), 137u);
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 100}}, 200),
                  "tensor 0's inline offset 100 is not a multiple of 64");
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 64}}, 200),
                  "tensor 0's inline offset 64 lies inside the frame");
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 0}}, 200),
                  "lies inside the frame");
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 128}}, 143),
                  "tensor 0's 16 inline bytes at offset 128 pass the end of the 143-byte message");
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 1024}}, 200),
                  "pass the end");
  // offset + bytes wraps around 2^64: still refused, not wrapped.
  ExpectMalformed(RequestWith({RawTensor{.placement = 1,
                                         .inline_offset =
                                             std::numeric_limits<uint64_t>::max() & ~uint64_t{63}}},
                              200),
                  "pass the end");
  const uint64_t huge = uint64_t{1} << 62;
  ExpectMalformed(
      RequestWith({RawTensor{.ndim = 2,
                             .shape = {int64_t{1} << 30, int64_t{1} << 30},
                             .bytes = huge,
                             .placement = 1,
                             .inline_offset = std::numeric_limits<uint64_t>::max() - 63 - 64}},
                  200),
      "pass the end");
  // In order and without overlap.
  const std::vector<uint8_t> ok = RequestWith({RawTensor{.placement = 1, .inline_offset = 192},
                                               RawTensor{.placement = 1, .inline_offset = 256}},
                                              272);
  CallFrame out;
  EXPECT_TRUE(DecodeCallFrame(ok, out).ok()) << DecodeCallFrame(ok, out);
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 256},
                               RawTensor{.placement = 1, .inline_offset = 192}},
                              272),
                  "tensor 1's inline offset 192 overlaps the inline tensor before it (which ends "
                  "at 272)");
  ExpectMalformed(RequestWith({RawTensor{.placement = 1, .inline_offset = 192},
                               RawTensor{.placement = 1, .inline_offset = 192}},
                              272),
                  "overlaps");
  // A tensor of 0 bytes takes no room: the next may start at its offset.
  const std::vector<uint8_t> empty_first =
      RequestWith({RawTensor{.shape = {0}, .bytes = 0, .placement = 1, .inline_offset = 192},
                   RawTensor{.placement = 1, .inline_offset = 192}},
                  208);
  EXPECT_TRUE(DecodeCallFrame(empty_first, out).ok()) << DecodeCallFrame(empty_first, out);
}

TEST(CallFrameDecode, EveryTruncationIsRefused) {
  CallFrame f = Request(12);
  const std::vector<uint8_t> m = Message(f);
  CallFrame out;
  ASSERT_TRUE(DecodeCallFrame(m, out).ok());
  for (size_t n = 0; n < m.size(); ++n) {
    // A copy of exactly n bytes, so that a read past it is a read past a
    // heap block (which ASan builds report).
    const std::vector<uint8_t> cut(m.begin(), m.begin() + static_cast<ptrdiff_t>(n));
    const absl::Status st = DecodeCallFrame(cut, out);
    ASSERT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << "length " << n;
    ASSERT_THAT(Error(st), HasSubstr("malformed call frame: ")) << "length " << n;
  }
}

TEST(CallFrameDecode, RandomByteFlipsNeverCrash) {
  std::mt19937 rng(20240521);
  const std::vector<uint8_t> originals[] = {[] {
                                              CallFrame f = Request(9);
                                              return Message(f);
                                            }(),
                                            [] {
                                              CallFrame f = Reply(3);
                                              return Message(f);
                                            }()};
  size_t decoded = 0;
  for (int round = 0; round < 4000; ++round) {
    std::vector<uint8_t> m = originals[round % 2];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      m[rng() % m.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    CallFrame out;
    const absl::Status st = DecodeCallFrame(m, out);
    if (!st.ok()) {
      ASSERT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ++decoded;
    // What decodes re-encodes to the same frame.
    const auto size = CallFrameSize(out);
    ASSERT_TRUE(size.ok()) << size.status();
    ASSERT_EQ(*size, out.frame_length);
    std::vector<uint8_t> again = m;
    ASSERT_TRUE(EncodeCallFrame(out, absl::MakeSpan(again)).ok());
    EXPECT_EQ(again, m);
  }
  // Flips of inline data and of fields any value suits (flags, call id,
  // timeout) still decode; the rest are refused.
  EXPECT_GT(decoded, 0u);
}

TEST(CallFrameEncode, RefusesWhatTheDecoderRefuses) {
  const auto refused = [](const CallFrame& f, const std::string& why) {
    const auto size = CallFrameSize(f);
    EXPECT_EQ(size.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(Error(size.status()), HasSubstr(why));
    std::vector<uint8_t> out(1 << 20);
    const auto written = EncodeCallFrame(f, absl::MakeSpan(out));
    EXPECT_EQ(written.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(Error(written.status()), HasSubstr(why));
  };
  CallFrame f = Request(1);
  f.method = "";
  refused(f, "needs a method name");
  const std::string long_method(129, 'm');
  f.method = long_method;
  refused(f, "call method name is 129 bytes; at most 128");

  f = Request(1);
  const std::vector<uint8_t> header(kMaxCallHeader + 1);
  f.header = header;
  refused(f, "call header is 65537 bytes; at most 65536");

  f = Request(129);
  refused(f, "a call carries at most 128 tensors; this one has 129");

  f = Request(2);
  f.tensors[1].desc.shape[0] = -1;
  refused(f, "call tensor 1: tensor shape [-1, 3, 2] has a negative extent");
  f = Request(2);
  f.tensors[1].desc.has_strides = true;
  f.tensors[1].desc.strides = {1, 1, 1};
  refused(f, "are not contiguous");
  f = Request(2);
  f.tensors[0].desc.device.pci_bus_id.clear();
  refused(f, "call tensor 0: a CUDA tensor's device needs its PCI bus id");
  f = Request(2);
  f.tensors[1].bytes += 1;
  refused(f, "call tensor 1 says");
  f = Request(2);
  f.tensors[1].placement = static_cast<Placement>(0);
  refused(f, "call tensor 1 has unknown placement 0");

  f = Request(0);
  f.kind = static_cast<CallKind>(9);
  refused(f, "unknown call kind 9");
  f = Request(0);
  f.call_id = kMaxCallId + 1;
  refused(f, "is above kMaxCallId");
  f = Reply(0);
  f.code = 17;
  refused(f, "call reply status code 17");
  // A reply's method does not matter.
  f = Reply(0);
  f.method = long_method;
  EXPECT_TRUE(CallFrameSize(f).ok());
}

TEST(CallFrameEncode, RefusesBadInlineOffsetsAndSmallBuffers) {
  CallFrame f = Request(3);  // tensors 1 and 2 inline
  const size_t size = *CallFrameSize(f);
  const uint64_t total = InlineLayout(f, size);
  std::vector<uint8_t> out(total);

  const auto refused = [&](const CallFrame& g, const std::string& why) {
    const auto written = EncodeCallFrame(g, absl::MakeSpan(out));
    EXPECT_EQ(written.status().code(), absl::StatusCode::kInvalidArgument) << why;
    EXPECT_THAT(Error(written.status()), HasSubstr(why));
  };
  CallFrame g = f;
  g.tensors[1].inline_offset += 8;
  refused(g, "call tensor 1's inline offset");
  refused(g, "is not a multiple of 64");
  g = f;
  g.tensors[1].inline_offset = 0;
  refused(g, "lies inside the frame");
  g = f;
  g.tensors[2].inline_offset = g.tensors[1].inline_offset;
  refused(g, "overlaps the tensor before it");
  // A separate tensor's offset is not looked at (and is sent as 0).
  g = f;
  g.tensors[0].inline_offset = 3;
  ASSERT_TRUE(EncodeCallFrame(g, absl::MakeSpan(out)).ok());
  CallFrame back;
  ASSERT_TRUE(DecodeCallFrame(out, back).ok());
  EXPECT_EQ(back.tensors[0].inline_offset, 0u);

  std::vector<uint8_t> small(size - 1);
  const auto written = EncodeCallFrame(f, absl::MakeSpan(small));
  EXPECT_EQ(written.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(written.status()), HasSubstr("does not fit"));
  // Exactly the frame's size is enough (the inline bytes are the caller's).
  std::vector<uint8_t> exact(size);
  EXPECT_EQ(*EncodeCallFrame(f, absl::MakeSpan(exact)), size);
}

TEST(CallFrameEncode, LongStatusMessagesAreTruncatedNotRefused) {
  CallFrame f = Reply(0);
  const std::string long_message(5000, 'x');
  f.message = long_message;
  const std::vector<uint8_t> m = Message(f);
  CallFrame got;
  ASSERT_TRUE(DecodeCallFrame(m, got).ok());
  EXPECT_EQ(got.message, std::string(kMaxStatusMessage, 'x'));

  // Not inside a UTF-8 sequence: "é" (2 bytes) straddling the limit goes
  // whole.
  std::string accented(kMaxStatusMessage - 1, 'a');
  accented += "\xc3\xa9 and more";
  f.message = accented;
  const std::vector<uint8_t> m2 = Message(f);
  ASSERT_TRUE(DecodeCallFrame(m2, got).ok());
  EXPECT_EQ(got.message, std::string(kMaxStatusMessage - 1, 'a'));
}

TEST(CallFrame, NoAllocationUpToInlineTensors) {
  CallFrame f = Request(kInlineTensors);
  const std::vector<uint8_t> m = Message(f);
  std::vector<uint8_t> out(m.size());
  CallFrame got;
  got.tensors.reserve(kInlineTensors);  // as a frame kept for reuse would be

  // The counter counts (the replacement operator new is the one in use).
  const size_t start = g_allocations.load();
  { const std::vector<uint8_t> probe(100); }
  ASSERT_GT(g_allocations.load(), start);

  const size_t before = g_allocations.load();
  const auto size = CallFrameSize(f);
  const auto written = EncodeCallFrame(f, absl::MakeSpan(out));
  const absl::Status decoded = DecodeCallFrame(m, got);
  const size_t after = g_allocations.load();
  ASSERT_TRUE(size.ok());
  ASSERT_TRUE(written.ok());
  ASSERT_TRUE(decoded.ok()) << decoded;
  EXPECT_EQ(after - before, 0u);

  // A fresh frame too: InlinedVector holds kInlineTensors without the heap.
  CallFrame fresh;
  const size_t before_fresh = g_allocations.load();
  const absl::Status again = DecodeCallFrame(m, fresh);
  EXPECT_EQ(g_allocations.load() - before_fresh, 0u);
  ASSERT_TRUE(again.ok());
  ExpectSame(fresh, f);
}

TEST(CallFrame, TagsAreDistinctAndDirected) {
  EXPECT_EQ(kCallRequestTag & kDirectedTagBit, 0u);  // lands in the receive area
  EXPECT_NE(CallReplyTag(5) & kDirectedTagBit, 0u);
  EXPECT_NE(CallTensorTag(5, 0, false) & kDirectedTagBit, 0u);
  EXPECT_NE(CallReplyTag(5), CallTensorTag(5, 0, false));
  EXPECT_NE(CallTensorTag(5, 0, false), CallTensorTag(5, 0, true));
  EXPECT_NE(CallTensorTag(5, 0, false), CallTensorTag(5, 1, false));
  EXPECT_NE(CallReplyTag(5), CallReplyTag(6));
}

}  // namespace
}  // namespace axon::wire
