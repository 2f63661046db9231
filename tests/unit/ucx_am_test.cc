// Active messages between two real UCX workers in one process (the UCX
// wrapper alone, no daemon): a sender's header buffer may be reused as soon
// as the send call returns, even while the send is in flight; received
// headers and data arrive whole and in order, small ones stored inline and
// large ones not; a handler that progresses the worker keeps that order.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/ucx/context.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/worker.h"

namespace axon::ucx {
namespace {

constexpr uint16_t kId = 7;

struct Received {
  std::vector<uint8_t> header;
  std::vector<uint8_t> data;             // eager
  std::unique_ptr<PendingData> pending;  // rendezvous
  bool in_descriptor = false;
};

class UcxAm : public ::testing::Test {
 protected:
  void SetUp() override {
    auto context = Context::Create({});
    ASSERT_TRUE(context.ok()) << context.status();
    context_ = *std::move(context);
    auto a = Worker::Create(*context_);
    auto b = Worker::Create(*context_);
    ASSERT_TRUE(a.ok() && b.ok());
    sender_ = *std::move(a);
    receiver_ = *std::move(b);
    ASSERT_TRUE(receiver_->SetAmHandler(kId, [this](AmMessage& m) { OnMessage(m); }).ok());
    auto address = receiver_->Address();
    ASSERT_TRUE(address.ok()) << address.status();
    auto ep = Endpoint::ConnectToWorker(*sender_, *address, [](const absl::Status&) {});
    ASSERT_TRUE(ep.ok()) << ep.status();
    ep_ = *std::move(ep);
  }

  void TearDown() override {
    received_.clear();  // releases rendezvous data before its worker goes
    ep_.reset();
    receiver_.reset();
    sender_.reset();
  }

  virtual void OnMessage(AmMessage& m) {
    Received r;
    r.header.assign(m.header.begin(), m.header.end());
    r.data.assign(m.data.begin(), m.data.end());
    r.pending = std::move(m.pending);
    r.in_descriptor = m.in_descriptor;
    received_.push_back(std::move(r));
  }

  // Progresses both workers until `done` holds (or 10 s pass).
  bool ProgressUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      sender_->Progress();
      receiver_->Progress();
    }
    return true;
  }

  static std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31);
    return v;
  }

  std::unique_ptr<Context> context_;
  std::unique_ptr<Worker> sender_, receiver_;
  std::unique_ptr<Endpoint> ep_;
  std::vector<Received> received_;
};

TEST_F(UcxAm, HeaderBufferIsReusableWhileTheSendIsInFlight) {
  const std::vector<uint8_t> header = Pattern(150, 1);
  std::vector<uint8_t> buffer = header;
  auto payload = std::make_shared<std::vector<uint8_t>>(Pattern(4 << 20, 9));
  std::optional<absl::Status> sent;
  ep_->SendAmFrom(kId, buffer, *payload, payload, AmProtocol::kRendezvous,
                  [&](const absl::Status& st) { sent = st; });
  // Rendezvous: the send waits for the receiver to pull the data, so it is
  // still in flight here. The caller's buffer is free for the next header.
  EXPECT_FALSE(sent.has_value());
  std::fill(buffer.begin(), buffer.end(), 0xee);
  ASSERT_TRUE(ProgressUntil([&] { return received_.size() == 1; }));
  EXPECT_EQ(received_[0].header, header);
  ASSERT_NE(received_[0].pending, nullptr);
  ASSERT_EQ(received_[0].pending->length(), payload->size());
  std::vector<uint8_t> into(payload->size());
  std::optional<absl::Status> pulled;
  Worker::ReceiveData(std::move(received_[0].pending), into.data(),
                      [&](const absl::Status& st) { pulled = st; });
  ASSERT_TRUE(ProgressUntil([&] { return pulled.has_value() && sent.has_value(); }));
  EXPECT_TRUE(pulled->ok()) << *pulled;
  EXPECT_TRUE(sent->ok()) << *sent;
  EXPECT_EQ(into, *payload);
}

TEST_F(UcxAm, EagerMessagesArriveWholeAndInOrder) {
  // Around the inline sizes of AmHeader (192) and AmData (128), and past.
  const std::vector<size_t> header_sizes = {32, 191, 192, 193, 1000};
  const std::vector<size_t> data_sizes = {0, 1, 127, 128, 129, 4000};
  std::vector<uint8_t> buffer;  // one header buffer for every send
  std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> expected;
  for (int round = 0; round < 20; ++round) {
    for (size_t h : header_sizes) {
      for (size_t d : data_sizes) {
        const auto seed = static_cast<uint8_t>(expected.size());
        buffer = Pattern(h, seed);
        auto data = std::make_shared<std::vector<uint8_t>>(Pattern(d, seed + 1));
        expected.emplace_back(buffer, *data);
        ep_->SendAmFrom(kId, buffer, *data, data, AmProtocol::kEager, nullptr);
      }
    }
  }
  ASSERT_TRUE(ProgressUntil([&] { return received_.size() == expected.size(); }));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(received_[i].header, expected[i].first) << i;
    EXPECT_EQ(received_[i].data, expected[i].second) << i;
    EXPECT_EQ(received_[i].pending, nullptr) << i;
  }
}

// Context::Create makes UCX's shared-memory FIFO element 512 bytes: a data
// frame's header (about 120 bytes) with a 64 B payload travels inside the
// element ("short"), not in a descriptor the element points to, as it does
// with UCX's default of 128 bytes. A larger one still goes in a descriptor.
TEST_F(UcxAm, SmallFramesTravelInsideTheSharedMemoryFifo) {
  const auto& tls = context_->info().transports;
  if (std::none_of(tls.begin(), tls.end(), [](const std::string& tl) {
        return tl.rfind("sysv/", 0) == 0 || tl.rfind("posix/", 0) == 0;
      })) {
    GTEST_SKIP() << "no shared-memory transport here";
  }
  std::vector<uint8_t> header = Pattern(120, 3);
  for (size_t size : {64, 1000}) {
    auto data = std::make_shared<std::vector<uint8_t>>(Pattern(size, 5));
    ep_->SendAmFrom(kId, header, *data, data, AmProtocol::kEager, nullptr);
  }
  ASSERT_TRUE(ProgressUntil([&] { return received_.size() == 2; }));
  EXPECT_FALSE(received_[0].in_descriptor) << "120 + 64 bytes did not fit the FIFO element";
  EXPECT_TRUE(received_[1].in_descriptor) << "120 + 1000 bytes fit a FIFO element?";
  EXPECT_EQ(received_[0].data, Pattern(64, 5));
  EXPECT_EQ(received_[1].data, Pattern(1000, 5));
}

// A handler that progresses the worker itself (and defers work) still sees
// the messages in the order they were sent, each once.
class UcxAmNested : public UcxAm {
 protected:
  void OnMessage(AmMessage& m) override {
    UcxAm::OnMessage(m);
    receiver_->Defer([this] { ++deferred_ran_; });
    for (int i = 0; i < 3; ++i) receiver_->Progress();
  }
  int deferred_ran_ = 0;
};

TEST_F(UcxAmNested, HandlerThatProgressesKeepsTheOrder) {
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) {
    const std::vector<uint8_t> header = {static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8)};
    ep_->SendAmFrom(kId, header, {}, nullptr, AmProtocol::kEager, nullptr);
  }
  ASSERT_TRUE(ProgressUntil([&] { return received_.size() == kCount; }));
  ASSERT_TRUE(ProgressUntil([&] { return deferred_ran_ == kCount; }));
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(received_[i].header.size(), 2u);
    EXPECT_EQ(received_[i].header[0] | (received_[i].header[1] << 8), i);
  }
}

}  // namespace
}  // namespace axon::ucx
