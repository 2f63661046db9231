// The README's example program, run as two real processes against two real
// daemons: the receiver gets the tensor the sender sent, checksums equal.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/cluster.h"

namespace axon::testing {
namespace {

std::string ChecksumIn(const std::string& text) {
  const size_t at = text.find("checksum ");
  return at == std::string::npos ? "" : text.substr(at + 9, 16);
}

TEST(ExampleTest, SendTensorBetweenTwoNodes) {
  TempDir dir;
  Cluster cluster(dir, {"node-a", "node-b"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  Child receiver({AXON_TEST_SEND_TENSOR, "recv", cluster.daemons[1]->socket(), "inbox"},
                 dir.File("recv.log"));
  ASSERT_TRUE(WaitFor([&] { return receiver.Log().find("waiting") != std::string::npos; },
                      std::chrono::seconds(20)))
      << receiver.Log();
  auto sent = RunProgram({AXON_TEST_SEND_TENSOR, "send", cluster.daemons[0]->socket(), "outbox",
                          "node-b/inbox", std::to_string(3 << 20)});
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  ASSERT_EQ(receiver.Wait(std::chrono::seconds(30)), 0) << receiver.Log();
  const std::string received = receiver.Log();
  EXPECT_THAT(received, ::testing::HasSubstr("received 3145728 bytes"));
  EXPECT_EQ(ChecksumIn(received), ChecksumIn(sent.out));
  EXPECT_FALSE(ChecksumIn(sent.out).empty());
}

}  // namespace
}  // namespace axon::testing
