// The call frame codec (common/wire/call.h) at its edges: every malformed
// frame refused with a reason (written by hand with the second rendering of
// the layout in tests/support/call_frames.h), every truncation refused, random
// byte flips refused or decoded but never a crash, the encoder refusing what
// the decoder refuses, and long status messages truncated rather than refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tensor/tensor_desc.h"
#include "common/wire/call.h"
#include "tests/support/call_frames.h"

namespace axon::wire {
namespace {

using ::testing::HasSubstr;
using testing_frames::Message;
using testing_frames::Raw;
using testing_frames::RawTensor;
using testing_frames::Reply;
using testing_frames::Request;

std::string Error(const absl::Status& st) { return std::string(st.message()); }

std::vector<uint8_t> RequestWith(const std::vector<RawTensor>& tensors, size_t message_size = 0) {
  Raw r = Raw::Request();
  r.U16(static_cast<uint16_t>(tensors.size()));
  for (const RawTensor& t : tensors) t.To(r);
  return r.Done(message_size);
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

}  // namespace
}  // namespace axon::wire
