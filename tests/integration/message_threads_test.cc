// Threads and messages through real daemons, local and remote as in
// message_test: completion by callback, future and progress thread, two
// threads on one client, and arrival handlers kept in order while two
// threads drive completions.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "axon/client.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

class MessageThreadsTest : public PairTest {};

INSTANTIATE_TEST_SUITE_P(Path, MessageThreadsTest, ::testing::Values(false, true), PathName);

// Completion by callback and by future; a progress thread drives them; and
// two threads use one client at once (a waiter never blocks a sender).
TEST_P(MessageThreadsTest, CallbacksFuturesAndThreads) {
  auto src = sender_->AllocateHost(4096);
  auto dst = receiver_->AllocateHost(4096);
  ASSERT_TRUE(src.ok() && dst.ok());
  // Callback, driven by Progress.
  auto recv = receiver_->PostRecv("b", 1, *dst, 0, 64);
  auto send = sender_->Send("a", At("b"), 1, *src, 0, 64);
  ASSERT_TRUE(recv.ok() && send.ok());
  std::atomic<int> called{0};
  sender_->OnComplete(*send, [&](const Completed& c) {
    EXPECT_TRUE(c.status.ok()) << c.status;
    EXPECT_EQ(c.length, 64u);
    called++;
  });
  auto future = receiver_->Future(*recv);
  while (called == 0) ASSERT_TRUE(sender_->Progress(10000).ok());
  while (future.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    ASSERT_TRUE(receiver_->Progress(10000).ok());
  }
  EXPECT_TRUE(future.get().status.ok());
  EXPECT_EQ(sender_->Progress(50).code(), absl::StatusCode::kDeadlineExceeded);
  // A client with a progress thread: futures fire with nobody waiting.
  auto threaded = Client::Connect({.socket_path = sending_daemon().socket(),
                                   .client_name = "threaded",
                                   .progress_thread = true});
  ASSERT_TRUE(threaded.ok());
  ASSERT_TRUE((*threaded)->BindEndpoint("t").ok());
  auto tbuf = (*threaded)->AllocateHost(4096);
  ASSERT_TRUE(tbuf.ok());
  auto tsend = (*threaded)->Send("t", At("b"), 2, *tbuf, 0, 32);
  ASSERT_TRUE(tsend.ok());
  auto tfuture = (*threaded)->Future(*tsend);
  auto recv2 = receiver_->PostRecv("b", 2, *dst, 0, 64);
  ASSERT_TRUE(recv2.ok());
  ASSERT_EQ(tfuture.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(tfuture.get().status.ok());
  EXPECT_TRUE(receiver_->Wait(*recv2)->status.ok());
  // One thread waits on a receive that takes a while; another sends meanwhile.
  auto slow = receiver_->PostRecv("b", 3, *dst, 0, 64);
  ASSERT_TRUE(slow.ok());
  std::thread waiter([&] { EXPECT_TRUE(receiver_->Wait(*slow, 10000)->status.ok()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the waiter sleeps now
  auto back = receiver_->Send("b", "node-a/a", 4, *dst, 0, 8);  // not blocked by the waiter
  auto recv_back = sender_->PostRecv("a", 4, *src, 0, 64);
  ASSERT_TRUE(back.ok() && recv_back.ok());
  EXPECT_TRUE(sender_->Wait(*recv_back)->status.ok());
  auto unblock = sender_->Send("a", At("b"), 3, *src, 0, 8);
  ASSERT_TRUE(unblock.ok());
  waiter.join();
  EXPECT_TRUE(receiver_->Wait(*back)->status.ok());
}

// Arrival handlers run in arrival order, one at a time, while two threads
// drive completions: the first handler is slow, and the other thread drains
// the later messages meanwhile; it must leave them to the first.
TEST_P(MessageThreadsTest, ArrivalHandlersKeepOrderWhileTwoThreadsDrive) {
  constexpr uint64_t kMessages = 200;
  auto area = receiver_->AllocateHost(kMessages * 256);
  auto src = sender_->AllocateHost(64);
  ASSERT_TRUE(area.ok() && src.ok());
  ASSERT_TRUE(receiver_->SetReceiveArea(*area, 256).ok());
  std::mutex mu;
  std::vector<uint64_t> tags;
  std::atomic<int> running{0}, overlapped{0};
  receiver_->OnArrival("b", [&](const Message& m) {
    if (running.fetch_add(1) != 0) overlapped++;
    if (m.tag == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    {
      std::lock_guard<std::mutex> lock(mu);
      tags.push_back(m.tag);
    }
    EXPECT_TRUE(receiver_->Release(m).ok());
    running--;
  });
  std::atomic<bool> stop{false};
  auto drive = [&] {
    while (!stop) (void)receiver_->Progress(20);
  };
  std::thread first(drive), second(drive);
  std::vector<Operation> sends;
  for (uint64_t i = 0; i < kMessages; ++i) {
    auto op = sender_->Send("a", At("b"), i, *src, 0, 64);
    ASSERT_TRUE(op.ok()) << op.status();
    sends.push_back(*op);
    // The rest come while the first handler runs.
    while (i == 0 && running == 0) std::this_thread::yield();
  }
  for (const Operation& op : sends) {
    auto done = sender_->Wait(op, 20000);
    ASSERT_TRUE(done.ok() && done->status.ok());
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < give_up) {
    std::lock_guard<std::mutex> lock(mu);
    if (tags.size() == kMessages) break;
  }
  stop = true;
  first.join();
  second.join();
  receiver_->OnArrival("b", nullptr);
  std::vector<uint64_t> expected(kMessages);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(tags, expected);
  EXPECT_EQ(overlapped, 0) << "two handlers ran at once";
}

}  // namespace
}  // namespace axon::testing
