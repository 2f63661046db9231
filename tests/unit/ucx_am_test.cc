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
#include "common/net_address.h"
#include "daemon/ucx/context.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/listener.h"
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
    r.in_descriptor = m.data.held();
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
  // Around the inline sizes of AmHeader (192) and AmData (512), and past.
  const std::vector<size_t> header_sizes = {32, 191, 192, 193, 1000};
  const std::vector<size_t> data_sizes = {0, 1, 511, 512, 513, 4000, 70000};
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

// A handler may keep an eager message's data past its return (UCX's
// descriptor, held): it stays intact while more messages arrive, and giving
// it back leaves the worker receiving.
class UcxAmKeeping : public UcxAm {
 protected:
  void OnMessage(AmMessage& m) override {
    UcxAm::OnMessage(m);
    kept_.push_back(std::move(m.data));
  }
  void TearDown() override {
    kept_.clear();
    UcxAm::TearDown();
  }
  std::vector<AmData> kept_;
};

TEST_F(UcxAmKeeping, KeptDataStaysIntactWhileMoreArrives) {
  const std::vector<uint8_t> header = Pattern(40, 2);
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i) {
    auto data = std::make_shared<std::vector<uint8_t>>(Pattern(600 + i * 37, i));
    ep_->SendAmFrom(kId, header, *data, data, AmProtocol::kEager, nullptr);
  }
  ASSERT_TRUE(ProgressUntil([&] { return kept_.size() == kCount; }));
  for (int i = 0; i < kCount; ++i) {
    const auto want = Pattern(600 + i * 37, i);
    ASSERT_EQ(std::vector<uint8_t>(kept_[i].begin(), kept_[i].end()), want) << i;
  }
  kept_.clear();  // every descriptor back to UCX
  auto data = std::make_shared<std::vector<uint8_t>>(Pattern(3000, 7));
  ep_->SendAmFrom(kId, header, *data, data, AmProtocol::kEager, nullptr);
  ASSERT_TRUE(ProgressUntil([&] { return kept_.size() == 1; }));
  EXPECT_EQ(std::vector<uint8_t>(kept_[0].begin(), kept_[0].end()), *data);
}

// A gathered send arrives as its parts back to back, each part kept alive by
// its own keepalive until UCX is done with it.
TEST_F(UcxAm, GatheredPartsArriveBackToBack) {
  const std::vector<uint8_t> header = Pattern(64, 4);
  for (size_t part_size : {8, 300, 5000, 100000}) {
    Parts parts;
    Keepalives keep;
    std::vector<uint8_t> whole;
    for (int i = 0; i < 9; ++i) {
      auto piece = std::make_shared<std::vector<uint8_t>>(Pattern(part_size + i, i));
      parts.push_back(*piece);
      whole.insert(whole.end(), piece->begin(), piece->end());
      keep.push_back(std::move(piece));  // the only owner from here on
    }
    std::optional<absl::Status> sent;
    received_.clear();
    ep_->SendAmGather(kId, header, std::move(parts), std::move(keep), AmProtocol::kAuto,
                      [&](const absl::Status& st) { sent = st; });
    ASSERT_TRUE(ProgressUntil([&] { return received_.size() == 1; })) << part_size;
    std::vector<uint8_t> got = received_[0].data;
    if (received_[0].pending) {
      got.resize(received_[0].pending->length());
      std::optional<absl::Status> pulled;
      Worker::ReceiveData(std::move(received_[0].pending), got.data(),
                          [&](const absl::Status& st) { pulled = st; });
      ASSERT_TRUE(ProgressUntil([&] { return pulled.has_value(); }));
      ASSERT_TRUE(pulled->ok()) << *pulled;
    }
    ASSERT_TRUE(ProgressUntil([&] { return sent.has_value(); }));
    EXPECT_TRUE(sent->ok()) << *sent;
    EXPECT_EQ(got, whole) << part_size;
  }
}

TEST(UcxGather, IsRecycledOnItsThread) {
  Gather* first = nullptr;
  {
    Gather::Ptr g = Gather::Take();
    g->iov.push_back({nullptr, 1});
    g->keep.push_back(std::make_shared<int>(1));
    first = g.get();
  }
  Gather::Ptr again = Gather::Take();
  EXPECT_EQ(again.get(), first);
  EXPECT_TRUE(again->iov.empty());
  EXPECT_TRUE(again->keep.empty());
}

TEST(UcxRecycledBlocks, ReusesBlocksBySizeClass) {
  size_t capacity = 0;
  uint8_t* a = RecycledBlocks::Take(1500, capacity);
  EXPECT_EQ(capacity, 2048u);
  RecycledBlocks::Give(a, capacity);
  size_t again = 0;
  EXPECT_EQ(RecycledBlocks::Take(2048, again), a);
  EXPECT_EQ(again, 2048u);
  RecycledBlocks::Give(a, again);
  size_t big = 0;
  uint8_t* b = RecycledBlocks::Take((3 << 20) + 1, big);  // past the classes: exact
  EXPECT_EQ(big, (3u << 20) + 1);
  RecycledBlocks::Give(b, big);
}

TEST(UcxAmData, CopiesInlineOrIntoABlockAndMoves) {
  for (size_t n : {0, 1, 512, 513, 70000}) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 7);
    AmData d;
    d.assign(bytes.data(), n);
    AmData moved(std::move(d));
    EXPECT_TRUE(d.empty());
    EXPECT_EQ(std::vector<uint8_t>(moved.begin(), moved.end()), bytes) << n;
    AmData assigned;
    const uint8_t three[3] = {1, 2, 3};
    assigned.assign(three, 3);
    assigned = std::move(moved);
    EXPECT_EQ(std::vector<uint8_t>(assigned.begin(), assigned.end()), bytes) << n;
    EXPECT_FALSE(assigned.held());
  }
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

// A message that waits for its handler while its endpoint is closed comes
// from nobody: UCX may give the next endpoint the closed one's address, and
// the message would then pass for that endpoint's.
class UcxAmForget : public UcxAm {
 protected:
  void TearDown() override {  // before the workers go
    accepted_.reset();
    out_.reset();
    listener_.reset();
    UcxAm::TearDown();
  }
  void OnMessage(AmMessage& m) override {
    from_.push_back(m.from);
    if (from_.size() != 1) return;
    // The second message arrives while this one is handled: it waits behind it.
    out_->SendAmFrom(kId, kHeader, {}, nullptr, AmProtocol::kEager, nullptr);
    second_waited_ = ProgressUntil([&] { return receiver_->arrivals_waiting() > 0; }) &&
                     receiver_->arrivals_waiting() == 1;
    accepted_.reset();
  }
  static constexpr uint8_t kHeader[] = {1, 2, 3};
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Endpoint> accepted_, out_;
  std::vector<EndpointId> from_;
  bool second_waited_ = false;
};

TEST_F(UcxAmForget, MessagesOfAClosedEndpointComeFromNobody) {
  auto address = ParseSocketAddress("127.0.0.1:0");
  ASSERT_TRUE(address.ok()) << address.status();
  auto listener = Listener::Create(*receiver_, *address, [&](ConnectionRequest request) {
    auto ep = Endpoint::Accept(*receiver_, request, [](const absl::Status&) {});
    if (ep.ok()) accepted_ = *std::move(ep);
  });
  ASSERT_TRUE(listener.ok()) << listener.status();
  listener_ = *std::move(listener);
  auto out = Endpoint::Connect(*sender_, listener_->address(), [](const absl::Status&) {});
  ASSERT_TRUE(out.ok()) << out.status();
  out_ = *std::move(out);
  ASSERT_TRUE(ProgressUntil([&] { return accepted_ != nullptr; }));
  const EndpointId accepted_id = accepted_->id();

  out_->SendAmFrom(kId, kHeader, {}, nullptr, AmProtocol::kEager, nullptr);
  ASSERT_TRUE(ProgressUntil([&] { return from_.size() == 2; }));
  ASSERT_TRUE(second_waited_);
  EXPECT_EQ(from_[0], accepted_id);  // the connection's endpoint here, while it lived
  EXPECT_EQ(from_[1], EndpointId::kNone);
}

}  // namespace
}  // namespace axon::ucx
