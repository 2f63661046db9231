// WindowTable (the owner's checks, and revocation waiting for holds) and the
// window wire codecs, without a daemon.
#include "daemon/window/window_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/wire/window.h"

namespace axon::daemon {
namespace {

using ::testing::HasSubstr;

class TestRegion final : public Region {
 public:
  explicit TestRegion(std::vector<uint8_t>& bytes)
      : Region(bytes.data(), bytes.size(), MemoryKind::kHost, -1) {}
};

class WindowTableTest : public ::testing::Test {
 protected:
  wire::WindowDescriptor Expose(uint64_t session, uint64_t region_id, uint64_t offset,
                                uint64_t length, std::vector<std::string> allowed = {},
                                uint8_t access = wire::kWindowRead | wire::kWindowWrite) {
    auto w = table_.Expose({.session = session,
                            .region_id = region_id,
                            .region = region_,
                            .offset = offset,
                            .length = length,
                            .allowed = std::move(allowed),
                            .access = access});
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : wire::WindowDescriptor{};
  }

  std::vector<uint8_t> bytes_ = std::vector<uint8_t>(8192);
  std::shared_ptr<Region> region_ = std::make_shared<TestRegion>(bytes_);
  WindowTable table_{"n1", 4};
};

TEST_F(WindowTableTest, ExposeChecksTheRegionTheAccessListAndTheLimit) {
  auto outside = table_.Expose({.session = 1, .region = region_, .offset = 8000, .length = 200});
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = table_.Expose({.session = 1, .region = region_, .length = 0});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* bad : {"", "/e", "n/", "a/b/c"}) {
    auto w = table_.Expose({.session = 1, .region = region_, .length = 1, .allowed = {bad}});
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  for (int i = 0; i < 4; ++i) Expose(1, 1, 0, 64);
  auto over = table_.Expose({.session = 1, .region = region_, .length = 1});
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(over.status().message(), HasSubstr("sessions.max_windows"));
  // The limit is per session.
  Expose(2, 1, 0, 64);
}

TEST_F(WindowTableTest, EveryRefusalHasItsOwnStatus) {
  const auto w = Expose(1, 1, 4096, 1024, {"n2/e", "n3"}, wire::kWindowWrite);
  EXPECT_EQ(w.node, "n1");
  auto ok = table_.Acquire(w.id, w.capability, "n2", "e", wire::kWindowWrite);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->data(), bytes_.data() + 4096);
  EXPECT_TRUE((*ok)->Check(0, 1024).ok());
  EXPECT_TRUE((*ok)->Check(1024, 0).ok());  // nothing, at the very end
  absl::Status st = (*ok)->Check(1000, 25);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(st.message(), HasSubstr("25 bytes from offset 1000 run past the end"));
  st = (*ok)->Check(1024, 1);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(st.message(), HasSubstr("offset 1024 is outside"));
  st = (*ok)->Check(~uint64_t{0}, 2);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(st.message(), HasSubstr("is outside"));
  EXPECT_THAT((*ok)->Check(8, ~uint64_t{0} - 4).message(), HasSubstr("run past the end"));
  EXPECT_TRUE(table_.Acquire(w.id, w.capability, "n3", "any", wire::kWindowWrite).ok());

  wire::Capability wrong = w.capability;
  wrong[15] ^= 1;
  EXPECT_EQ(table_.Acquire(w.id, wrong, "n2", "e", wire::kWindowWrite).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(table_.Acquire(w.id, w.capability, "n2", "f", wire::kWindowWrite).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(table_.Acquire(w.id, w.capability, "n2", "e", wire::kWindowRead).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(table_.Acquire(w.id + 100, w.capability, "n2", "e", wire::kWindowWrite).status().code(),
            absl::StatusCode::kNotFound);
  // Another run's prefix: revoked by the restart.
  EXPECT_EQ(table_.Acquire(w.id ^ (uint64_t{1} << 40), w.capability, "n2", "e", wire::kWindowWrite)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ok->reset();
  ASSERT_TRUE(table_.Unexpose(1, w.id, absl::Seconds(1)).ok());
  auto revoked = table_.Acquire(w.id, w.capability, "n2", "e", wire::kWindowWrite);
  EXPECT_EQ(revoked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(revoked.status().message(), HasSubstr("revoked"));
  EXPECT_EQ(table_.Unexpose(1, w.id, absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
}

TEST_F(WindowTableTest, RevocationWaitsForTheOperationsHoldingTheWindow) {
  const auto w = Expose(1, 1, 0, 64);
  auto grant = table_.Acquire(w.id, w.capability, "n1", "e", wire::kWindowWrite);
  ASSERT_TRUE(grant.ok());
  (*grant)->Moved(64);
  std::atomic<bool> returned{false};
  std::thread revoker([&] {
    EXPECT_TRUE(table_.Unexpose(1, w.id, absl::Seconds(30)).ok());
    returned = true;
  });
  // Revoked at once: nothing new starts.
  while (table_.size() != 0) std::this_thread::yield();
  EXPECT_EQ(table_.Acquire(w.id, w.capability, "n1", "e", wire::kWindowWrite).status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(returned.load());  // the grant still holds it
  grant->reset();
  revoker.join();
  EXPECT_TRUE(returned.load());
}

TEST_F(WindowTableTest, AHoldOutlastingTheWaitIsReported) {
  const auto w = Expose(1, 1, 0, 64);
  auto grant = table_.Acquire(w.id, w.capability, "n1", "e", wire::kWindowRead);
  ASSERT_TRUE(grant.ok());
  const absl::Status st = table_.RevokeSession(1, absl::Milliseconds(50));
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(st.message(), HasSubstr("do not free"));
}

TEST_F(WindowTableTest, RegionAndSessionRevocationTakeOnlyTheirs) {
  const auto a = Expose(1, 1, 0, 64);
  const auto b = Expose(1, 2, 0, 64);
  const auto c = Expose(2, 1, 0, 64);
  ASSERT_TRUE(table_.RevokeRegion(1, 1, absl::Seconds(1)).ok());
  EXPECT_FALSE(table_.Acquire(a.id, a.capability, "n", "e", wire::kWindowRead).ok());
  EXPECT_TRUE(table_.Acquire(b.id, b.capability, "n", "e", wire::kWindowRead).ok());
  EXPECT_TRUE(table_.Acquire(c.id, c.capability, "n", "e", wire::kWindowRead).ok());
  ASSERT_TRUE(table_.RevokeSession(1, absl::Seconds(1)).ok());
  EXPECT_FALSE(table_.Acquire(b.id, b.capability, "n", "e", wire::kWindowRead).ok());
  EXPECT_TRUE(table_.Acquire(c.id, c.capability, "n", "e", wire::kWindowRead).ok());
  ASSERT_EQ(table_.List().size(), 1u);
  EXPECT_EQ(table_.List()[0].reads, 2u);  // c's two grants, released
}

TEST(WindowWireTest, DescriptorsRoundTripAndGarbageIsRefused) {
  wire::WindowDescriptor w{.node = "node-7", .id = 0x1234'0000'0042, .length = 1 << 20};
  for (size_t i = 0; i < w.capability.size(); ++i) w.capability[i] = static_cast<uint8_t>(i * 3);
  const std::string bytes = wire::EncodeWindowDescriptor(w);
  auto back = wire::DecodeWindowDescriptor(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->node, w.node);
  EXPECT_EQ(back->id, w.id);
  EXPECT_EQ(back->length, w.length);
  EXPECT_EQ(back->capability, w.capability);
  EXPECT_EQ(back->access, w.access);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(wire::DecodeWindowDescriptor(bytes.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(wire::DecodeWindowDescriptor(bytes + "x").ok());
  std::string bad_access = bytes;
  bad_access[4 + 8 + 8 + 16] = wire::kWindowRma;  // RMA, but neither read nor write
  EXPECT_FALSE(wire::DecodeWindowDescriptor(bad_access).ok());
  bad_access[4 + 8 + 8 + 16] = 8;
  EXPECT_FALSE(wire::DecodeWindowDescriptor(bad_access).ok());
  w.access |= wire::kWindowRma;
  auto rma = wire::DecodeWindowDescriptor(wire::EncodeWindowDescriptor(w));
  ASSERT_TRUE(rma.ok()) << rma.status();
  EXPECT_EQ(rma->access, w.access);
}

TEST(WindowWireTest, RmaRequestsRoundTripAndEveryBadFieldIsRefused) {
  wire::RmaRequest request;
  request.keys = {{1, 2, 3}, std::vector<uint8_t>(40, 7)};
  request.blocks = {
      {.window_offset = 0, .address = 0x1000, .length = 64, .key = 0},
      {.window_offset = 4096, .address = 0x7f00'0000'0000, .length = 16384, .key = 1}};
  const std::vector<uint8_t> bytes = wire::EncodeRmaRequest(request);
  auto back = wire::DecodeRmaRequest(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->keys, request.keys);
  ASSERT_EQ(back->blocks.size(), 2u);
  EXPECT_EQ(back->blocks[1].address, request.blocks[1].address);
  EXPECT_EQ(back->blocks[1].key, 1u);
  EXPECT_EQ(wire::EncodeRmaRequest(*back), bytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(wire::DecodeRmaRequest({bytes.data(), n}).ok()) << n;
  }
  auto with = [&](auto change) {
    wire::RmaRequest r = request;
    change(r);
    return wire::DecodeRmaRequest(wire::EncodeRmaRequest(r)).ok();
  };
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.blocks[0].key = 2; }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.blocks[0].length = 0; }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.blocks[1].address = ~uint64_t{0} - 8; }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.keys.clear(); }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.keys[0].clear(); }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.blocks.clear(); }));
  EXPECT_FALSE(with([](wire::RmaRequest& r) { r.keys[0].assign(wire::kMaxRmaKeyBytes + 1, 1); }));
  EXPECT_FALSE(
      with([](wire::RmaRequest& r) { r.blocks.assign(wire::kMaxRmaBlocks + 1, r.blocks[0]); }));
  std::vector<uint8_t> padded = bytes;
  padded[16 + 4 + 3] = 1;  // the first key's padding
  EXPECT_FALSE(wire::DecodeRmaRequest(padded).ok());

  // With a notification after the blocks.
  request.notify = true;
  request.notify_tag = 77;
  request.notify_bytes = "layer 3";
  const std::vector<uint8_t> noted = wire::EncodeRmaRequest(request);
  auto with_note = wire::DecodeRmaRequest(noted);
  ASSERT_TRUE(with_note.ok()) << with_note.status();
  EXPECT_TRUE(with_note->notify);
  EXPECT_EQ(with_note->notify_tag, 77u);
  EXPECT_EQ(with_note->notify_bytes, "layer 3");
  EXPECT_EQ(wire::EncodeRmaRequest(*with_note), noted);
  for (size_t n = bytes.size(); n < noted.size(); ++n) {
    EXPECT_FALSE(wire::DecodeRmaRequest({noted.data(), n}).ok()) << n;
  }
  std::vector<uint8_t> bad_pad = noted;
  bad_pad.back() = 1;  // "layer 3" is 7 bytes: one of padding
  EXPECT_FALSE(wire::DecodeRmaRequest(bad_pad).ok());
  EXPECT_FALSE(with([](wire::RmaRequest& r) {
    r.notify = true;
    r.notify_bytes.assign(wire::kMaxNotifyBytes + 1, 'x');
  }));
  std::vector<uint8_t> bad_flags = bytes;
  bad_flags[12] = 2;
  EXPECT_FALSE(wire::DecodeRmaRequest(bad_flags).ok());
}

TEST(WindowWireTest, OperationListsRoundTripAndBadCountsAreRefused) {
  wire::WindowOpList list{.window = 9, .notify = true, .notify_tag = 5};
  list.blocks = {{1, 2, 3, 4}, {5, 6, 7, 8}};
  const std::string note = "hello";
  std::vector<uint8_t> bytes(wire::WindowOpListBytes(2, note.size()));
  wire::EncodeWindowOpList(list, {reinterpret_cast<const uint8_t*>(note.data()), note.size()},
                           bytes.data());
  auto back = wire::DecodeWindowOpList(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->blocks.size(), 2u);
  EXPECT_EQ(back->blocks[1].window_offset, 7u);
  EXPECT_EQ(back->notify_length, note.size());
  EXPECT_EQ(std::string(bytes.begin() + static_cast<ptrdiff_t>(back->notify_offset()), bytes.end()),
            note);
  // Any other size than the header says is refused.
  for (size_t n : {size_t{0}, size_t{55}, bytes.size() - 1}) {
    EXPECT_FALSE(wire::DecodeWindowOpList({bytes.data(), n}).ok()) << n;
  }
  auto with_count = [&](uint32_t count) {
    std::vector<uint8_t> b = bytes;
    std::memcpy(b.data() + 4, &count, 4);
    return wire::DecodeWindowOpList(b).ok();
  };
  EXPECT_FALSE(with_count(0));
  EXPECT_FALSE(with_count(3));
  EXPECT_FALSE(with_count(0xffffffff));
  std::vector<uint8_t> zero_block = bytes;
  std::memset(zero_block.data() + wire::WindowOpList::kHeaderBytes + 24, 0, 8);
  EXPECT_FALSE(wire::DecodeWindowOpList(zero_block).ok());
}

}  // namespace
}  // namespace axon::daemon
