// One-sided transfers through real daemons (the three paths of
// window_fixture.h): writes and reads with notifications, every check the
// owner's daemon makes, revocation racing writes and by the owner's session
// ending. Killed owners, initiators and daemons: window_fault_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "tests/integration/window_fixture.h"
#include "tests/support/axond.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

INSTANTIATE_TEST_SUITE_P(Path, WindowTest,
                         ::testing::Values(Path::kLocal, Path::kRma, Path::kFrames),
                         WindowPathName);

TEST_P(WindowTest, AWriteLandsBeforeItsNotification) {
  ExposeHost(1 << 20);
  EXPECT_EQ(window_.node, remote() ? "node-b" : "node-a");
  EXPECT_EQ(window_.length, 1u << 20);
  auto src = sender_->AllocateHost(1 << 20);
  auto note_into = receiver_->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && note_into.ok());
  auto* s = static_cast<uint8_t*>(src->data());
  for (size_t i = 0; i < (1u << 20); ++i) s[i] = static_cast<uint8_t>(i * 7 + 3);
  // The owner waits for the notification; when it comes the bytes are there.
  auto note = receiver_->PostRecv("b", 77, *note_into, 0, 4096);
  ASSERT_TRUE(note.ok());
  const Block blocks[] = {
      {&*src, 0, 4096, 100}, {&*src, 1000, 0, 3000}, {&*src, 8192, 65536, 500000}};
  const Notification notification{77, "layer 3 done"};
  size_t moved = 0;
  ASSERT_TRUE(Finish(sender_->Write("a", window_, blocks, &notification), *sender_, &moved).ok());
  EXPECT_EQ(moved, 100u + 3000u + 500000u);
  auto arrived = receiver_->Wait(*note, 10000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  EXPECT_EQ(arrived->tag, 77u);
  EXPECT_EQ(std::string(static_cast<const char*>(note_into->data()), arrived->length),
            "layer 3 done");
  EXPECT_EQ(Checksum(owned() + 4096, 100), Checksum(s, 100));
  EXPECT_EQ(Checksum(owned(), 3000), Checksum(s + 1000, 3000));
  EXPECT_EQ(Checksum(owned() + 65536, 500000), Checksum(s + 8192, 500000));
  EXPECT_EQ(owned()[4096 + 100], 0);  // nothing past a block
}

TEST_P(WindowTest, AxonctlShowsWindowsAndTheirTrafficByPath) {
  ExposeHost(65536, {.notify_endpoint = "b", .allowed = {"node-a"}});
  auto src = sender_->AllocateHost(65536);
  ASSERT_TRUE(src.ok());
  const Block two[] = {{&*src, 0, 0, 1000}, {&*src, 0, 4096, 24}};
  ASSERT_TRUE(Finish(sender_->Write("a", window_, two), *sender_).ok());
  ASSERT_TRUE(Finish(sender_->Read("a", window_, two), *sender_).ok());
  const auto sessions = receiving_daemon().CtlJson<v1::ListSessionsResponse>({"sessions"});
  const v1::WindowInfo* shown = nullptr;
  for (const auto& s : sessions.sessions()) {
    for (const auto& w : s.windows()) shown = &w;
  }
  ASSERT_NE(shown, nullptr);
  EXPECT_EQ(shown->window_id(), window_.id);
  EXPECT_EQ(shown->length(), 65536u);
  EXPECT_EQ(shown->notify_endpoint(), "b");
  EXPECT_EQ(shown->holds(), 0u);
  // Each operation holds the window once on one node or by RMA; as frames,
  // once per block.
  const uint64_t ops = frames() ? 4 : 2;
  EXPECT_EQ(shown->writes() + shown->reads(), ops);
  EXPECT_EQ(shown->bytes_written(), 1024u);
  EXPECT_EQ(shown->bytes_read(), 1024u);
  EXPECT_EQ(remote() ? shown->remote_ops() : shown->local_ops(), ops);
  EXPECT_EQ(remote() ? shown->remote_bytes() : shown->local_bytes(), 2048u);
  EXPECT_EQ(shown->rma_ops(), rma() ? 2u : 0u);
  EXPECT_EQ(shown->rma_bytes(), rma() ? 2048u : 0u);
  const std::string table = receiving_daemon().Ctl({"windows"}).out;
  EXPECT_THAT(table, HasSubstr(std::to_string(window_.id)));
  EXPECT_THAT(table, HasSubstr("node-a"));
}

TEST_P(WindowTest, AReadCopiesOutOfTheWindow) {
  ExposeHost(65536);
  for (size_t i = 0; i < 65536; ++i) owned()[i] = static_cast<uint8_t>(i ^ 0x5a);
  auto dst = sender_->AllocateHost(65536);
  ASSERT_TRUE(dst.ok());
  std::memset(dst->data(), 0, 65536);
  const Block blocks[] = {{&*dst, 0, 1000, 2000}, {&*dst, 4096, 0, 64}};
  ASSERT_TRUE(Finish(sender_->Read("a", window_, blocks), *sender_).ok());
  auto* d = static_cast<uint8_t*>(dst->data());
  EXPECT_EQ(Checksum(d, 2000), Checksum(owned() + 1000, 2000));
  EXPECT_EQ(Checksum(d + 4096, 64), Checksum(owned(), 64));
}

TEST_P(WindowTest, ALargeReadWithANotificationToTheOwner) {
  constexpr size_t kBytes = 4 << 20;
  ExposeHost(kBytes);
  for (size_t i = 0; i < kBytes; ++i) owned()[i] = static_cast<uint8_t>(i * 13 + (i >> 12));
  auto dst = sender_->AllocateHost(kBytes);
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(dst.ok() && note_into.ok());
  auto note = receiver_->PostRecv("b", 8, *note_into, 0, 64);
  ASSERT_TRUE(note.ok());
  // Two large blocks (rendezvous between daemons) and a small one, swapped.
  const Block blocks[] = {{&*dst, 0, kBytes / 2, kBytes / 2},
                          {&*dst, kBytes / 2, 0, kBytes / 2 - 100},
                          {&*dst, kBytes - 100, kBytes / 2 - 100, 100}};
  const Notification done{8, "read"};
  size_t moved = 0;
  ASSERT_TRUE(Finish(sender_->Read("a", window_, blocks, &done), *sender_, &moved).ok());
  EXPECT_EQ(moved, kBytes);
  auto* d = static_cast<uint8_t*>(dst->data());
  EXPECT_EQ(Checksum(d, kBytes / 2), Checksum(owned() + kBytes / 2, kBytes / 2));
  EXPECT_EQ(Checksum(d + kBytes / 2, kBytes / 2), Checksum(owned(), kBytes / 2));
  auto arrived = receiver_->Wait(*note, 10000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  EXPECT_EQ(std::string(static_cast<const char*>(note_into->data()), arrived->length), "read");
}

TEST_P(WindowTest, AThousandSmallBlocksWithOneNotification) {
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  ExposeHost(kBlocks * kBlock);
  auto src = sender_->AllocateHost(kBlocks * kBlock);
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(src.ok() && note_into.ok());
  auto* s = static_cast<uint8_t*>(src->data());
  for (size_t i = 0; i < kBlocks * kBlock; ++i) s[i] = static_cast<uint8_t>(i * 131 + i / kBlock);
  const std::vector<Block> blocks = Reversed(*src, kBlocks, kBlock);
  auto note = receiver_->PostRecv("b", 1, *note_into, 0, 64);
  ASSERT_TRUE(note.ok());
  const Notification notification{1, ""};
  ASSERT_TRUE(Finish(sender_->Write("a", window_, blocks, &notification), *sender_).ok());
  auto arrived = receiver_->Wait(*note, 10000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  EXPECT_EQ(arrived->length, 0u);
  ASSERT_TRUE(HoldsReversed(s, kBlocks, kBlock));
}

TEST_P(WindowTest, MoreBlocksThanOneRmaRequestTakesWithOneNotification) {
  // 5,000 blocks: two RMA requests (4,096 blocks each at most), and the
  // notification only after both are served.
  constexpr size_t kBlocks = 5000, kBlock = 64;
  ExposeHost(kBlocks * kBlock);
  auto src = sender_->AllocateHost(kBlocks * kBlock);
  auto back = sender_->AllocateHost(kBlocks * kBlock);
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(src.ok() && back.ok() && note_into.ok());
  auto* s = static_cast<uint8_t*>(src->data());
  for (size_t i = 0; i < kBlocks * kBlock; ++i) s[i] = static_cast<uint8_t>(i * 29 + i / kBlock);
  const std::vector<Block> blocks = Reversed(*src, kBlocks, kBlock);
  const std::vector<Block> reads = Reversed(*back, kBlocks, kBlock);
  auto note = receiver_->PostRecv("b", 5, *note_into, 0, 64);
  ASSERT_TRUE(note.ok());
  const Notification notification{5, "both"};
  size_t moved = 0;
  ASSERT_TRUE(Finish(sender_->Write("a", window_, blocks, &notification), *sender_, &moved).ok());
  EXPECT_EQ(moved, kBlocks * kBlock);
  auto arrived = receiver_->Wait(*note, 10000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  ASSERT_TRUE(HoldsReversed(s, kBlocks, kBlock));
  // And back out, each block to where it came from.
  ASSERT_TRUE(Finish(sender_->Read("a", window_, reads), *sender_).ok());
  EXPECT_EQ(Checksum(back->data(), kBlocks * kBlock), Checksum(s, kBlocks * kBlock));
}

TEST_P(WindowTest, BlocksFromManyBuffersWithOneNotification) {
  // 100 source buffers: more regions than one RMA request carries keys for
  // (64), so two requests, then the notification.
  constexpr size_t kBuffers = 100, kBlock = 4096;
  ExposeHost(kBuffers * kBlock);
  std::vector<HostBuffer> sources;
  std::vector<Block> blocks;
  for (size_t i = 0; i < kBuffers; ++i) {
    auto b = sender_->AllocateHost(kBlock);
    ASSERT_TRUE(b.ok()) << b.status();
    std::memset(b->data(), static_cast<int>(i + 1), kBlock);
    sources.push_back(*std::move(b));
  }
  for (size_t i = 0; i < kBuffers; ++i) blocks.push_back({&sources[i], 0, i * kBlock, kBlock});
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(note_into.ok());
  auto note = receiver_->PostRecv("b", 3, *note_into, 0, 64);
  ASSERT_TRUE(note.ok());
  const Notification notification{3, "all"};
  ASSERT_TRUE(Finish(sender_->Write("a", window_, blocks, &notification), *sender_).ok());
  auto arrived = receiver_->Wait(*note, 10000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  for (size_t i = 0; i < kBuffers; ++i) {
    ASSERT_EQ(owned()[i * kBlock], i + 1) << i;
    ASSERT_EQ(owned()[i * kBlock + kBlock - 1], i + 1) << i;
  }
}

TEST_P(WindowTest, AnOwnerThatServesNoRmaRefusesRmaRequests) {
  // The descriptor's RMA bit is the owner's word; an initiator that claims
  // it for a window whose owner sends frames gets a clear refusal, and the
  // honest descriptor still works.
  if (!remote()) GTEST_SKIP() << "two daemons";
  ExposeHost(4096);
  constexpr size_t kAccess = 4 + 8 + 8 + 16;
  EXPECT_EQ((window_.descriptor[kAccess] & 4) != 0, rma());
  std::string forged = window_.descriptor;
  forged[kAccess] = static_cast<char>(forged[kAccess] | 4);
  auto claimed = Window::FromDescriptor(forged);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  const Block one[] = {{&*src, 0, 0, 4096}};
  const absl::Status st = Finish(sender_->Write("a", *claimed, one), *sender_);
  if (frames()) {
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
    EXPECT_THAT(st.message(), HasSubstr("peers.window_transfer"));
  } else {
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_TRUE(Finish(sender_->Write("a", window_, one), *sender_).ok());
}

TEST_P(WindowTest, TheNotificationFindsEveryByteInPlace) {
  // The owner reads the window the moment the notification arrives, before
  // the initiator has heard that its write completed: every byte of the
  // operation must be there by then, round after round. 4 MiB in all: on
  // one node the blocks go to the copy threads (engine.parallel_copy_min_kib).
  constexpr size_t kBlocks = 1024, kBlock = 4096;
  ExposeHost(kBlocks * kBlock);
  auto src = sender_->AllocateHost(kBlocks * kBlock);
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(src.ok() && note_into.ok());
  auto* s = static_cast<uint8_t*>(src->data());
  const std::vector<Block> blocks = Reversed(*src, kBlocks, kBlock);
  const Notification notification{3, "landed"};
  for (int round = 1; round <= 10; ++round) {
    for (size_t i = 0; i < kBlocks * kBlock; ++i) s[i] = static_cast<uint8_t>(i * 7 + round);
    auto note = receiver_->PostRecv("b", 3, *note_into, 0, 64);
    ASSERT_TRUE(note.ok());
    auto op = sender_->Write("a", window_, blocks, &notification);
    ASSERT_TRUE(op.ok()) << op.status();
    auto arrived = receiver_->Wait(*note, 10000);
    ASSERT_TRUE(arrived.ok() && arrived->status.ok()) << round;
    ASSERT_TRUE(HoldsReversed(s, kBlocks, kBlock)) << "round " << round;
    ASSERT_TRUE(Finish(std::move(op), *sender_).ok());  // before the source changes
  }
}

TEST_P(WindowTest, EveryBadInputHasItsOwnStatus) {
  ExposeHost(4096, {.notify_endpoint = "b", .allowed = {"node-a/a", "node-z"}});
  auto src = sender_->AllocateHost(8192);
  ASSERT_TRUE(src.ok());
  const Block one[] = {{&*src, 0, 0, 64}};
  auto code = [&](absl::StatusOr<Operation> op) { return Finish(std::move(op), *sender_); };

  // A length past the end, and an offset outside the window: one code,
  // each its own message.
  const Block past[] = {{&*src, 0, 4000, 200}};
  absl::Status st = code(sender_->Write("a", window_, past));
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  EXPECT_THAT(st.message(), HasSubstr("200 bytes from offset 4000 run past the end"));
  const Block far[] = {{&*src, 0, uint64_t{1} << 40, 1}};
  st = code(sender_->Write("a", window_, far));
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  EXPECT_THAT(st.message(), HasSubstr("offset 1099511627776 is outside window"));
  const Block whole[] = {{&*src, 0, 64, 4096}};
  st = code(sender_->Write("a", window_, whole));
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  EXPECT_THAT(st.message(), HasSubstr("4096 bytes from offset 64 run past the end"));

  Window forged = window_;
  forged.descriptor[20] = static_cast<char>(forged.descriptor[20] ^ 1);  // a capability byte
  st = code(sender_->Write("a", forged, one));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated) << st;

  // The id's sequence (its low half, after the 4-byte magic) far past any
  // window exposed in this run: unknown, not revoked.
  Window unknown = window_;
  unknown.descriptor[7] = 0x7f;
  st = code(sender_->Write("a", unknown, one));
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;

  // Not on the access list: a second endpoint of the sender.
  ASSERT_TRUE(sender_->BindEndpoint("a2").ok());
  st = code(sender_->Write("a2", window_, one));
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  EXPECT_THAT(st.message(), HasSubstr("access list"));

  // Not bound by the initiator.
  st = code(sender_->Write("b", window_, one));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;

  // A block outside the initiator's own buffer.
  const Block outside[] = {{&*src, 8000, 0, 500}};
  EXPECT_EQ(sender_->Write("a", window_, outside).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Window::FromDescriptor("not a descriptor").status().code(),
            absl::StatusCode::kInvalidArgument);

  // Nothing of the failed operations landed.
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(owned()[i], 0) << i;

  // Revoked.
  ASSERT_TRUE(receiver_->Unexpose(window_).ok());
  st = code(sender_->Write("a", window_, one));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(st.message(), HasSubstr("revoked"));
  EXPECT_EQ(receiver_->Unexpose(window_).code(), absl::StatusCode::kNotFound);
}

TEST_P(WindowTest, AccessKindsAndNotificationsAreTheOwnersToAllow) {
  ExposeHost(4096, {.readable = false});  // no notify endpoint, write only
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  EXPECT_FALSE(window_.readable);
  const Block one[] = {{&*src, 0, 0, 64}};
  absl::Status st = Finish(sender_->Read("a", window_, one), *sender_);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  const Notification note{5, "x"};
  st = Finish(sender_->Write("a", window_, one, &note), *sender_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(st.message(), HasSubstr("no notifications"));
  EXPECT_TRUE(Finish(sender_->Write("a", window_, one), *sender_).ok());

  // Exposing: bytes outside the buffer, a notify endpoint not the owner's,
  // a malformed access list.
  EXPECT_EQ(receiver_->Expose(*owned_, 4000, 200).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(receiver_->Expose(*owned_, 0, 64, {.notify_endpoint = "a"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(receiver_->Expose(*owned_, 0, 64, {.allowed = {"a/b/c"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(WindowTest, NoWriteLandsAfterUnexposeReturns) {
  constexpr size_t kBytes = 4 << 20;
  ExposeHost(kBytes, {});
  auto src = sender_->AllocateHost(kBytes);
  ASSERT_TRUE(src.ok());
  std::memset(src->data(), 0xaa, kBytes);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, revoked{0}, other{0};
  std::thread writer([&] {
    const Block all[] = {{&*src, 0, 0, kBytes}};
    while (!stop.load()) {
      absl::Status st = Finish(sender_->Write("a", window_, all), *sender_);
      if (st.ok()) {
        ++ok;
      } else if (st.code() == absl::StatusCode::kFailedPrecondition) {
        ++revoked;
      } else {
        ++other;
      }
    }
  });
  while (ok.load() < 20) std::this_thread::yield();
  ASSERT_TRUE(receiver_->Unexpose(window_).ok());
  // The memory is the owner's again at once: reuse it.
  std::memset(owned(), 0x55, kBytes);
  while (revoked.load() < 20) std::this_thread::yield();
  stop = true;
  writer.join();
  EXPECT_EQ(other.load(), 0);
  for (size_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(owned()[i], 0x55) << i;
  EXPECT_EQ(owned()[kBytes - 1], 0x55);
}

TEST_P(WindowTest, TheOwnersSessionEndingRevokesItsWindows) {
  ExposeHost(4096);
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  const Block one[] = {{&*src, 0, 0, 64}};
  ASSERT_TRUE(Finish(sender_->Write("a", window_, one), *sender_).ok());
  owned_.reset();
  receiver_.reset();  // detaches: the session and its windows go
  absl::Status st = absl::OkStatus();
  ASSERT_TRUE(WaitFor(
      [&] {
        st = Finish(sender_->Write("a", window_, one), *sender_);
        return !st.ok();
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
}

TEST_P(WindowTest, UnregisteringTheMemoryRevokesTheWindow) {
  ExposeHost(4096);
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  owned_.reset();  // unregistered (and freed)
  const Block one[] = {{&*src, 0, 0, 64}};
  absl::Status st = Finish(sender_->Write("a", window_, one), *sender_);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
}

TEST_P(WindowTest, TheOwnersDaemonChecksTheBoundsItself) {
  ExposeHost(4096);
  auto src = sender_->AllocateHost(8192);
  ASSERT_TRUE(src.ok());
  // A descriptor that lies about the length: the initiator's daemon lets
  // the block go, the owner's refuses it.
  auto decoded = Window::FromDescriptor(window_.descriptor);
  ASSERT_TRUE(decoded.ok());
  Window longer = window_;
  const uint64_t length = 8192;
  std::memcpy(longer.descriptor.data() + 12, &length, sizeof(length));
  const Block past[] = {{&*src, 0, 4096, 1024}};
  absl::Status st = Finish(sender_->Write("a", longer, past), *sender_);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(owned()[i], 0) << i;
}

}  // namespace
}  // namespace axon::testing
