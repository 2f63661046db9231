// The call frame codec (common/wire/call.h): round trips of requests and
// replies of 0 to 128 tensors, the layout byte for byte (against the second,
// independent rendering of it in tests/support/call_frames.h), no heap
// allocation for frames of up to kInlineTensors tensors, and the tags calls
// travel under. Malformed frames are call_frame_decode_test's.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/tensor/tensor_desc.h"
#include "common/wire/call.h"
#include "tests/support/call_frames.h"

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

using testing_frames::Cuda;
using testing_frames::Make;
using testing_frames::Message;
using testing_frames::Raw;
using testing_frames::RawTensor;
using testing_frames::Reply;
using testing_frames::Request;

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
