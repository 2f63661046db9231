// The wire header codec and handshake bodies: round trips, and every kind of
// malformed input refused with a reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/wire/data.h"
#include "common/wire/handshake.h"
#include "common/wire/header.h"
#include "common/wire/ring_ops.h"

namespace axon::wire {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string Error(const absl::Status& st) { return std::string(st.message()); }

std::vector<uint8_t> SampleMessage() {
  Header h{.type = MessageType::kPing, .flags = 7, .payload_length = 100, .sequence = 42};
  return Encode(h, Bytes("body!"));
}

TEST(WireHeader, RoundTrip) {
  const auto message = SampleMessage();  // the decoded body points into it
  auto decoded = Decode(message, 100);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->header.type, MessageType::kPing);
  EXPECT_EQ(decoded->header.version, kVersion);
  EXPECT_EQ(decoded->header.flags, 7u);
  EXPECT_EQ(decoded->header.payload_length, 100u);
  EXPECT_EQ(decoded->header.sequence, 42u);
  EXPECT_EQ(std::string(decoded->body.begin(), decoded->body.end()), "body!");
}

// The fixed layout, byte for byte (little endian), so a change to the
// encoder cannot go unnoticed between daemons of different builds.
TEST(WireHeader, LayoutIsLittleEndianAndFixed) {
  const auto m = SampleMessage();
  // clang-format off
  const std::vector<uint8_t> expected_header = {
      0x41, 0x58, 0x4e, 0x31,                          // kMagic, "AXN1"
      static_cast<uint8_t>(kVersion), 0,               // version
      static_cast<uint8_t>(MessageType::kPing), 0,     // type
      7, 0, 0, 0,                                      // flags
      5, 0, 0, 0,                                      // body length
      100, 0, 0, 0, 0, 0, 0, 0,                        // payload length
      42, 0, 0, 0, 0, 0, 0, 0};                        // sequence
  // clang-format on
  ASSERT_EQ(m.size(), kHeaderSize + 5);
  EXPECT_EQ(std::vector<uint8_t>(m.begin(), m.begin() + kHeaderSize), expected_header);
}

// Frame puts the header in front of a body BodyWriter wrote, in the body's
// own storage, and gives what Encode gives.
TEST(WireHeader, FrameIsEncodeWithoutACopy) {
  Header h{.type = MessageType::kData, .payload_length = 64, .sequence = 9};
  const DataBody body{.message_id = 3, .tag = 77, .from = "sender", .to = "receiver"};
  std::vector<uint8_t> encoded = EncodeData(body);
  const std::vector<uint8_t> expected = Encode(h, encoded);
  const size_t body_size = encoded.size();
  const uint8_t* storage = encoded.data();
  std::vector<uint8_t> framed = Frame(h, std::move(encoded));
  EXPECT_EQ(framed, expected);
  EXPECT_EQ(framed.data(), storage);
  auto decoded = Decode(framed, 64);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  auto data = DecodeData(decoded->body);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->tag, 77u);
  EXPECT_EQ(data->to, "receiver");
  // A body from elsewhere still frames right (with a copy).
  EXPECT_EQ(Frame(h, std::vector<uint8_t>(body_size, 1)).size(), expected.size());
}

TEST(WireHeader, EveryTruncationIsRefused) {
  const auto full = SampleMessage();
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    auto decoded = Decode(absl::MakeConstSpan(full).subspan(0, n), 100);
    ASSERT_FALSE(decoded.ok());
    EXPECT_THAT(Error(decoded.status()),
                n < kHeaderSize ? HasSubstr("truncated") : HasSubstr("does not match"));
  }
}

TEST(WireHeader, BadMagic) {
  auto bytes = SampleMessage();
  bytes[0] ^= 0xff;
  EXPECT_THAT(Error(Decode(bytes, 100).status()), HasSubstr("bad magic"));
}

TEST(WireHeader, FutureAndPastVersions) {
  auto bytes = SampleMessage();
  bytes[4] = kVersion + 1;
  auto future = Decode(bytes, 100);
  EXPECT_EQ(future.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Error(future.status()), HasSubstr("newer"));
  bytes[4] = 0;
  EXPECT_THAT(Error(Decode(bytes, 100).status()), HasSubstr("older"));
}

TEST(WireHeader, UnknownTypes) {
  for (uint8_t type : {0, kMaxMessageType + 1, 0xff}) {
    auto bytes = SampleMessage();
    bytes[6] = type;
    EXPECT_THAT(Error(Decode(bytes, 100).status()), HasSubstr("unknown message type"));
  }
}

TEST(WireHeader, LengthsPastTheEndOrOversized) {
  auto bytes = SampleMessage();
  bytes[12] = 200;  // body_length claims more than present
  EXPECT_THAT(Error(Decode(bytes, 100).status()), HasSubstr("does not match"));
  bytes[12] = 0;
  bytes[15] = 0x7f;  // body_length ~2 GiB
  EXPECT_THAT(Error(Decode(bytes, 100).status()), HasSubstr("exceeds the limit"));

  auto payload = SampleMessage();
  payload[23] = 0xff;  // payload_length ~2^63
  EXPECT_THAT(Error(Decode(payload, 100).status()), HasSubstr("payload length"));
  EXPECT_THAT(Error(Decode(SampleMessage(), 99).status()), HasSubstr("does not match the 99"));
}

Hello SampleHello() {
  Hello h;
  h.node_name = "node-a";
  h.capabilities = kCapCudaMemory;
  h.transports = {"tcp/lo", "sysv/memory"};
  h.nonce.fill(9);
  h.proof.assign(kProofSize, 3);
  h.worker_address = {1, 2, 3, 4, 5, 6, 7};
  h.shard_addresses = {{8, 9}, {10, 11, 12}};
  return h;
}

TEST(WireHandshake, HelloRoundTrip) {
  auto decoded = DecodeHello(EncodeHello(SampleHello()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->node_name, "node-a");
  EXPECT_EQ(decoded->capabilities, kCapCudaMemory);
  EXPECT_EQ(decoded->transports, (std::vector<std::string>{"tcp/lo", "sysv/memory"}));
  EXPECT_EQ(decoded->nonce, SampleHello().nonce);
  EXPECT_EQ(decoded->proof, SampleHello().proof);
  EXPECT_EQ(decoded->worker_address, SampleHello().worker_address);
  EXPECT_EQ(decoded->shard_addresses, SampleHello().shard_addresses);
}

TEST(WireHandshake, HelloShardAddressesAreChecked) {
  Hello empty = SampleHello();
  empty.shard_addresses = {{}};
  EXPECT_THAT(Error(DecodeHello(EncodeHello(empty)).status()), HasSubstr("shard address of 0"));
  Hello none = SampleHello();
  none.shard_addresses.clear();
  auto decoded = DecodeHello(EncodeHello(none));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->shard_addresses.empty());
}

TEST(WireHandshake, HelloEveryTruncationIsRefused) {
  const auto body = EncodeHello(SampleHello());
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_FALSE(DecodeHello(absl::MakeConstSpan(body).subspan(0, n)).ok()) << n;
  }
  auto longer = body;
  longer.push_back(0);
  EXPECT_THAT(Error(DecodeHello(longer).status()), HasSubstr("stray"));
}

TEST(WireHandshake, HelloOversizedCountsAndStrings) {
  BodyWriter w;
  w.String("n");
  w.U64(0);
  w.U16(kMaxTransports + 1);
  EXPECT_THAT(Error(DecodeHello(w.Take()).status()), HasSubstr("transports"));

  BodyWriter long_name;
  long_name.String(std::string(kMaxNodeName + 1, 'x'));
  EXPECT_THAT(Error(DecodeHello(long_name.Take()).status()), HasSubstr("exceeds its limit"));

  BodyWriter string_past_end;
  string_past_end.U16(50);  // claims 50 bytes, has 3
  string_past_end.Fixed(Bytes("abc"));
  EXPECT_THAT(Error(DecodeHello(string_past_end.Take()).status()), HasSubstr("truncated"));

  Hello bad_proof = SampleHello();
  bad_proof.proof.assign(5, 1);
  EXPECT_THAT(Error(DecodeHello(EncodeHello(bad_proof)).status()), HasSubstr("proof of 5"));

  Hello empty_name = SampleHello();
  empty_name.node_name.clear();
  EXPECT_THAT(Error(DecodeHello(EncodeHello(empty_name)).status()), HasSubstr("empty node name"));
}

TEST(WireHandshake, ProofAndRejectRoundTrip) {
  const std::vector<uint8_t> proof(kProofSize, 5);
  EXPECT_EQ(*DecodeProof(EncodeProof(proof)), proof);
  EXPECT_TRUE(DecodeProof(EncodeProof({}))->empty());
  EXPECT_FALSE(DecodeProof(Bytes("\x05"
                                 "abcde"))
                   .ok());
  EXPECT_EQ(*DecodeReject(EncodeReject("wrong token")), "wrong token");
  EXPECT_FALSE(DecodeReject({}).ok());
}

TEST(WireHandshake, ProofsBindTokenRoleNoncesAndName) {
  Nonce d{}, a{};
  d.fill(1);
  a.fill(2);
  const auto proof = MakeProof("secret", Role::kDialer, d, a, "node-a");
  EXPECT_EQ(proof.size(), kProofSize);
  EXPECT_TRUE(ProofMatches(proof, MakeProof("secret", Role::kDialer, d, a, "node-a")));
  EXPECT_FALSE(ProofMatches(proof, MakeProof("secreT", Role::kDialer, d, a, "node-a")));
  EXPECT_FALSE(ProofMatches(proof, MakeProof("secret", Role::kAcceptor, d, a, "node-a")));
  EXPECT_FALSE(ProofMatches(proof, MakeProof("secret", Role::kDialer, a, d, "node-a")));
  EXPECT_FALSE(ProofMatches(proof, MakeProof("secret", Role::kDialer, d, a, "node-b")));
  EXPECT_TRUE(MakeProof("", Role::kDialer, d, a, "node-a").empty());
  EXPECT_FALSE(ProofMatches({}, proof));
}

TEST(WireHandshake, NoncesAreFresh) { EXPECT_NE(*RandomNonce(), *RandomNonce()); }

TEST(WireData, RoundTripsAndRefusesTruncation) {
  const DataBody body{.message_id = 7, .tag = 0xfeed, .from = "trainer-0", .to = "param-server"};
  const auto bytes = EncodeData(body);
  auto decoded = DecodeData(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->message_id, 7u);
  EXPECT_EQ(decoded->tag, 0xfeedu);
  EXPECT_EQ(decoded->from, "trainer-0");
  EXPECT_EQ(decoded->to, "param-server");
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeData(absl::MakeConstSpan(bytes).subspan(0, n)).ok()) << n;
  }
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_THAT(Error(DecodeData(longer).status()), HasSubstr("trailing"));
  EXPECT_FALSE(DecodeData(EncodeData(DataBody{.to = std::string(64, 'x')})).ok());
}

// The per-message path writes header and body in one pass into a buffer kept
// from frame to frame; it must be the frame Encode makes of EncodeData's body,
// whatever the buffer held before (a longer frame, a shorter one).
TEST(WireData, FrameInPlaceEqualsHeaderAndEncodedBody) {
  const DataBody bodies[] = {
      {.message_id = 7, .tag = 0xfeed, .from = "trainer-0", .to = "param-server"},
      {.message_id = 1, .to = "b"},
      {.message_id = 9,
       .tag = 3,
       .from = std::string(63, 'f'),
       .to = std::string(63, 't'),
       .handle = std::string(64, 'h'),
       .bus_id = "0000:19:00.0",
       .handle_offset = 4096,
       .length = 1 << 20,
       .probe = true},
      {.message_id = 2,
       .from = "a",
       .to = "c",
       .total = 1 << 30,
       .offset = 32 << 20,
       .first_id = 1},
  };
  std::vector<uint8_t> out(1000, 0xab);  // reused: holds stale bytes at first
  uint64_t sequence = 1;
  for (const DataBody& body : bodies) {
    const Header header{.version = kVersion,
                        .type = MessageType::kData,
                        .payload_length = 64,
                        .sequence = sequence++};
    EncodeDataFrame(header, View(body), out);
    EXPECT_EQ(out, Encode(header, EncodeData(body))) << body.message_id;
    auto decoded = Decode(out, 64);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->header.sequence, header.sequence);
    auto data = DecodeData(decoded->body);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(data->to, body.to);
    EXPECT_EQ(data->handle, body.handle);
    EXPECT_EQ(data->probe, body.probe);
  }
}

// The fast decoder (no Status per field) accepts exactly what the checked
// one does: random corruptions of valid frames either fail with a reason
// from both, or decode to a body that encodes back to the same bytes.
TEST(WireData, DecodingCorruptFramesFailsOrRoundTrips) {
  const std::vector<DataBody> bodies = {
      {.message_id = 7, .tag = 1, .from = "trainer-0", .to = "param-server"},
      {.message_id = 9, .to = "b", .total = 3 << 20, .offset = 2 << 20, .first_id = 7},
      {.message_id = 3,
       .to = "b",
       .handle = std::string(64, '\x07'),
       .bus_id = "0000:07:00.0",
       .handle_offset = 4096,
       .length = 1 << 20,
       .probe = true}};
  std::mt19937 random(42);
  int failed = 0, decoded = 0;
  for (const DataBody& body : bodies) {
    const std::vector<uint8_t> good = EncodeData(body);
    for (int i = 0; i < 3000; ++i) {
      std::vector<uint8_t> bytes = good;
      const int flips = 1 + static_cast<int>(random() % 3);
      for (int f = 0; f < flips; ++f) {
        bytes[random() % bytes.size()] = static_cast<uint8_t>(random() % 4 == 0 ? random() : 0);
      }
      if (random() % 8 == 0) bytes.resize(random() % (bytes.size() + 4), 0);
      auto view = DecodeDataView(bytes);
      ASSERT_EQ(view.ok(), internal::DecodeDataChecked(bytes).ok()) << "corruption " << i;
      if (!view.ok()) {
        EXPECT_FALSE(view.status().message().empty());
        EXPECT_FALSE(DecodeData(bytes).ok());
        ++failed;
        continue;
      }
      ++decoded;
      EXPECT_EQ(EncodeData(*view), bytes) << "corruption " << i;
      auto body_again = DecodeData(bytes);
      ASSERT_TRUE(body_again.ok());
      EXPECT_EQ(body_again->to, std::string(view->to.data(), view->to.size()));
    }
  }
  EXPECT_GT(failed, 100);  // both ways taken
  EXPECT_GT(decoded, 100);
}

TEST(WireData, ChunksSayWhereTheyGo) {
  const DataBody chunk{
      .message_id = 9, .to = "b", .total = 3 << 20, .offset = 2 << 20, .first_id = 7};
  auto decoded = DecodeData(EncodeData(chunk));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->total, 3u << 20);
  EXPECT_EQ(decoded->offset, 2u << 20);
  EXPECT_EQ(decoded->first_id, 7u);
  // Not chunked: all zero.
  auto plain = DecodeData(EncodeData(DataBody{.message_id = 1, .to = "b"}));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->total, 0u);
  // A chunk that starts past the end of its message.
  EXPECT_THAT(
      Error(DecodeData(EncodeData(DataBody{.to = "b", .total = 10, .offset = 10})).status()),
      HasSubstr("past the end"));
}

TEST(WireData, AMessageByHandleCarriesWhereItLies) {
  const std::string handle(64, '\x07');
  const DataBody by_handle{.message_id = 3,
                           .to = "b",
                           .handle = handle,
                           .bus_id = "0000:07:00.0",
                           .handle_offset = 4096,
                           .length = 1 << 20,
                           .probe = true};
  auto decoded = DecodeData(EncodeData(by_handle));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->handle, handle);
  EXPECT_EQ(decoded->bus_id, "0000:07:00.0");
  EXPECT_EQ(decoded->handle_offset, 4096u);
  EXPECT_EQ(decoded->length, 1u << 20);
  EXPECT_TRUE(decoded->probe);
  // A handle with no length, or chunked, or longer than CUDA's, is refused.
  DataBody empty = by_handle;
  empty.length = 0;
  EXPECT_THAT(Error(DecodeData(EncodeData(empty)).status()), HasSubstr("needs a length"));
  DataBody chunked = by_handle;
  chunked.total = 2 << 20;
  EXPECT_FALSE(DecodeData(EncodeData(chunked)).ok());
  DataBody longer = by_handle;
  longer.handle += "x";
  EXPECT_FALSE(DecodeData(EncodeData(longer)).ok());
  auto closed = DecodeHandleClosed(EncodeHandleClosed(handle));
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_EQ(*closed, handle);
  EXPECT_FALSE(DecodeHandleClosed({}).ok());
  EXPECT_FALSE(DecodeHandleClosed(EncodeHandleClosed(handle + "x")).ok());
}

TEST(WireData, AckCarriesTheStatusAndUnknownCodesAreNotOk) {
  auto ack = DecodeAck(EncodeAck(9, absl::NotFoundError("no endpoint 'x'")));
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->message_id, 9u);
  EXPECT_EQ(ack->status(), absl::NotFoundError("no endpoint 'x'"));
  BodyWriter w;
  w.U64(1);
  w.U32(999);
  w.String("from the future");
  auto future = DecodeAck(w.Take());
  ASSERT_TRUE(future.ok());
  EXPECT_EQ(future->code, absl::StatusCode::kUnknown);
  auto cancel = DecodeCancel(EncodeCancel(12));
  ASSERT_TRUE(cancel.ok());
  EXPECT_EQ(*cancel, 12u);
  EXPECT_FALSE(DecodeCancel({}).ok());
}

TEST(WireData, BatchedAcksRoundTripAndBadCountsAreRefused) {
  const std::vector<uint64_t> ids = {3, 1, 4, uint64_t{1} << 60};
  auto back = DecodeAcks(EncodeAcks(ids));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, ids);
  std::vector<uint64_t> most(kMaxAckedIds, 7);
  ASSERT_TRUE(DecodeAcks(EncodeAcks(most)).ok());
  most.push_back(7);
  EXPECT_FALSE(DecodeAcks(EncodeAcks(most)).ok());  // one id too many
  EXPECT_FALSE(DecodeAcks(EncodeAcks({})).ok());    // none
  std::vector<uint8_t> bytes = EncodeAcks(ids);
  for (size_t n = 0; n < bytes.size(); ++n) {  // every truncation
    EXPECT_FALSE(DecodeAcks(absl::MakeConstSpan(bytes.data(), n)).ok()) << n;
  }
  bytes.push_back(0);
  EXPECT_FALSE(DecodeAcks(bytes).ok());  // trailing bytes
  BodyWriter w;                          // a count that claims more ids than the body holds
  w.U32(1000);
  w.U64(1);
  EXPECT_FALSE(DecodeAcks(w.Take()).ok());
}

TEST(WireRing, OkCompletionBytesAreTheShortCompletion) {
  const Completion c{.op_id = 0x0102030405060708, .length = 64, .tag = 0xfeed};
  const auto expected = CompletionBytes(c);
  const auto bytes = OkCompletionBytes(c.op_id, c.length, c.tag);
  ASSERT_EQ(expected.size(), bytes.size());
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), expected.begin()));
  auto read = ReadCompletion(bytes);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->op_id, c.op_id);
  EXPECT_EQ(read->code, 0u);
  EXPECT_EQ(read->length, 64u);
  EXPECT_EQ(read->tag, 0xfeedu);
}

// An arrival goes whole, whatever its slot (slot 0 reads as a NUL where a
// failure's text would start), and its names come back as written.
TEST(WireRing, AnArrivalKeepsItsSlotAndNames) {
  for (uint64_t slot : {uint64_t{0}, uint64_t{7}}) {
    Completion c{.flags = kCompletionArrival, .length = 12, .tag = 3};
    c.arrival.slot = slot;
    ASSERT_TRUE(SetNameField(c.arrival.endpoint, "inbox"));
    ASSERT_TRUE(SetNameField(c.arrival.source, "node-a/outbox"));
    const auto bytes = CompletionBytes(c);
    EXPECT_EQ(bytes.size(), sizeof(Completion));
    auto read = ReadCompletion(bytes);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->op_id, 0u);
    EXPECT_EQ(read->arrival.slot, slot);
    EXPECT_EQ(NameView(read->arrival.endpoint), "inbox");
    EXPECT_EQ(NameView(read->arrival.source), "node-a/outbox");
  }
}

// A failure's text goes with it; an OK completion goes short.
TEST(WireRing, OnlyAFailureWithTextGoesLong) {
  Completion failed{.op_id = 4, .code = 5};
  EXPECT_EQ(CompletionBytes(failed).size(), kCompletionShortSize);
  ASSERT_TRUE(SetNameField(failed.message, "no endpoint"));
  EXPECT_EQ(CompletionBytes(failed).size(), sizeof(Completion));
  EXPECT_EQ(CompletionBytes(Completion{.op_id = 4}).size(), kCompletionShortSize);
}

// Names in ring entries come from shared memory a client writes: at most
// N - 1 bytes are read, whether or not a NUL ends them.
TEST(WireRing, NameViewStopsAtNulOrAtTheFieldsEnd) {
  char field[8] = {};
  EXPECT_EQ(NameView(field), "");
  ASSERT_TRUE(SetNameField(field, "node/ep"));
  EXPECT_EQ(NameView(field), "node/ep");
  EXPECT_FALSE(SetNameField(field, "12345678"));  // no room for the NUL
  std::memcpy(field, "abcdefgh", 8);              // no NUL at all
  EXPECT_EQ(NameView(field), "abcdefg");
  field[3] = '\0';
  EXPECT_EQ(NameView(field), "abc");
  EXPECT_EQ(NameField(field), "abc");
}

}  // namespace
}  // namespace axon::wire
