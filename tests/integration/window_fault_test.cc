// One-sided transfers when a party dies (the three paths of
// window_fixture.h): the owner's client or its daemon killed in the middle
// of batches, the initiator killed in the middle of one, a window on a node
// that is gone. Nothing hangs, and each failure has its status.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "axon/client.h"
#include "tests/integration/window_fixture.h"
#include "tests/support/axond.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;

// A helper process's line "<key> <value>" from its log, once it printed one.
std::string LineOf(Child& child, const std::string& key) {
  std::string value;
  WaitFor(
      [&] {
        const std::string log = child.Log();
        const size_t at = log.rfind(key + " ");
        if (at == std::string::npos) return false;
        const size_t end = log.find('\n', at);
        if (end == std::string::npos) return false;
        value = log.substr(at + key.size() + 1, end - at - key.size() - 1);
        return true;
      },
      std::chrono::seconds(20));
  return value;
}

TEST_P(WindowTest, TheOwnerKilledMidBatchFailsTheBatchesWithoutAHang) {
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  Child owner({HelperPath("window_peer"), "owner", receiving_daemon().socket(),
               std::to_string(kBlocks * kBlock)},
              dir_.File("owner.log"));
  const std::string hex = LineOf(owner, "descriptor");
  ASSERT_FALSE(hex.empty()) << owner.Log();
  auto window = Window::FromDescriptor(absl::HexStringToBytes(hex));
  ASSERT_TRUE(window.ok()) << window.status();
  auto src = sender_->AllocateHost(kBlocks * kBlock);
  ASSERT_TRUE(src.ok());
  std::vector<Block> batch;
  for (size_t i = 0; i < kBlocks; ++i) batch.push_back({&*src, i * kBlock, i * kBlock, kBlock});
  const absl::Status last = WriteUntilKilled(*window, batch, [&] { owner.Signal(SIGKILL); });
  EXPECT_EQ(last.code(), absl::StatusCode::kFailedPrecondition) << last;
  EXPECT_THAT(last.message(), HasSubstr("revoked"));
}

TEST_P(WindowTest, TheInitiatorKilledMidBatchLeavesTheWindowFree) {
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  ExposeHost(kBlocks * kBlock, {.notify_endpoint = "b"});
  Child writer(
      {HelperPath("window_peer"), "writer", sending_daemon().socket(),
       absl::BytesToHexString(window_.descriptor), std::to_string(kBlocks), std::to_string(kBlock)},
      dir_.File("writer.log"));
  ASSERT_TRUE(WaitFor([&] { return writer.Log().find("wrote 3") != std::string::npos; },
                      std::chrono::seconds(20)))
      << writer.Log();
  writer.Signal(SIGKILL);
  writer.Wait(std::chrono::seconds(10));
  // Nothing holds the window past its bound: it is revoked at once and
  // its memory is the owner's again.
  ASSERT_TRUE(receiver_->Unexpose(window_).ok());
  auto again = receiver_->Expose(*owned_, 0, kBlock, {});
  ASSERT_TRUE(again.ok());
  auto src = sender_->AllocateHost(kBlock);
  ASSERT_TRUE(src.ok());
  const Block one[] = {{&*src, 0, 0, kBlock}};
  EXPECT_TRUE(Finish(sender_->Write("a", *again, one), *sender_).ok());
}

TEST_P(WindowTest, TheOwnersDaemonKilledMidBatchFailsUnavailableWithoutAHang) {
  if (!remote()) GTEST_SKIP() << "two daemons";
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  ExposeHost(kBlocks * kBlock, {.notify_endpoint = "b"});
  auto src = sender_->AllocateHost(kBlocks * kBlock);
  ASSERT_TRUE(src.ok());
  std::vector<Block> batch;
  for (size_t i = 0; i < kBlocks; ++i) batch.push_back({&*src, i * kBlock, i * kBlock, kBlock});
  const absl::Status last =
      WriteUntilKilled(window_, batch, [&] { receiving_daemon().process().Signal(SIGKILL); });
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
}

TEST_P(WindowTest, AWindowOnAGoneNodeFailsUnavailable) {
  if (!remote()) GTEST_SKIP() << "two daemons";
  ExposeHost(4096);
  auto src = sender_->AllocateHost(4096);
  ASSERT_TRUE(src.ok());
  const Block one[] = {{&*src, 0, 0, 64}};
  ASSERT_TRUE(Finish(sender_->Write("a", window_, one), *sender_).ok());
  Window elsewhere = window_;
  elsewhere.descriptor.replace(elsewhere.descriptor.size() - 6, 6, "node-z");
  absl::Status st =
      Finish(sender_->Write("a", *Window::FromDescriptor(elsewhere.descriptor), one), *sender_);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  receiver_.reset();
  owned_.reset();
  receiving_daemon().process().Signal(SIGKILL);
  ASSERT_TRUE(WaitFor(
      [&] {
        st = Finish(sender_->Write("a", window_, one), *sender_);
        return st.code() == absl::StatusCode::kUnavailable;
      },
      std::chrono::seconds(20)))
      << st;
}

}  // namespace
}  // namespace axon::testing
