// The shared-memory SPSC ring: order, back-pressure, untrusted positions, the
// doorbell protocol between two threads (no lost wake-up), and two processes.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/ring/spsc_ring.h"

namespace axon::ring {
namespace {

constexpr uint32_t kSlots = 8;
constexpr uint32_t kSlotSize = 64;

struct SharedMemory {
  explicit SharedMemory(size_t bytes) : size(bytes) {
    data = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  }
  ~SharedMemory() { ::munmap(data, size); }
  void* data;
  size_t size;
};

std::vector<uint8_t> Message(uint64_t n, size_t size = 8) {
  std::vector<uint8_t> m(size, 0);
  std::memcpy(m.data(), &n, std::min(size, sizeof(n)));
  return m;
}

TEST(SpscRing, OrderWrapAroundAndBackPressure) {
  SharedMemory memory(RingBytes(kSlots, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, kSlots, kSlotSize).ok());
  auto producer = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  auto consumer = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  ASSERT_TRUE(producer.ok() && consumer.ok());
  std::vector<uint8_t> out(consumer->max_message());
  uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    while (true) {
      auto pushed = producer->TryPush(Message(next_in));
      ASSERT_TRUE(pushed.ok());
      if (!*pushed) break;  // full: back-pressure, nothing dropped
      ++next_in;
    }
    EXPECT_EQ(consumer->size(), kSlots);
    for (int i = 0; i < 3; ++i) {
      auto n = consumer->TryPop(absl::MakeSpan(out));
      ASSERT_TRUE(n.ok());
      ASSERT_EQ(*n, 8);
      uint64_t value;
      std::memcpy(&value, out.data(), sizeof(value));
      EXPECT_EQ(value, next_out++);
    }
  }
  while (*consumer->TryPop(absl::MakeSpan(out)) >= 0) ++next_out;
  EXPECT_EQ(next_in, next_out);
  EXPECT_EQ(*consumer->TryPop(absl::MakeSpan(out)), -1);
}

TEST(SpscRing, MessageSizes) {
  SharedMemory memory(RingBytes(kSlots, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, kSlots, kSlotSize).ok());
  auto ring = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  ASSERT_TRUE(ring.ok());
  EXPECT_TRUE(*ring->TryPush({}));
  EXPECT_TRUE(*ring->TryPush(std::vector<uint8_t>(ring->max_message(), 1)));
  EXPECT_EQ(ring->TryPush(std::vector<uint8_t>(ring->max_message() + 1, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<uint8_t> out(ring->max_message());
  EXPECT_EQ(*ring->TryPop(absl::MakeSpan(out)), 0);
  EXPECT_EQ(*ring->TryPop(absl::MakeSpan(out)), static_cast<int64_t>(ring->max_message()));
}

TEST(SpscRing, BadGeometryIsRefused) {
  SharedMemory memory(RingBytes(kSlots, kSlotSize));
  EXPECT_FALSE(SpscRing::Initialize(memory.data, memory.size, 6, kSlotSize).ok());
  EXPECT_FALSE(SpscRing::Initialize(memory.data, memory.size, kSlots, 12).ok());
  EXPECT_FALSE(SpscRing::Initialize(memory.data, 100, kSlots, kSlotSize).ok());
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, kSlots, kSlotSize).ok());
  // The other side must agree on the geometry it expects.
  EXPECT_FALSE(SpscRing::Attach(memory.data, memory.size, kSlots / 2, kSlotSize).ok());
  EXPECT_FALSE(SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize * 2).ok());
  // A ring of the first layout ("AXNR", the consumer read the tail) from an
  // older client: refused, saying so.
  static_cast<RingHeader*>(memory.data)->magic = 0x524e5841;
  auto old = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("different axon versions"), std::string::npos)
      << old.status();
}

TEST(SpscRing, CorruptPositionsAreDataLossNotAnOverread) {
  SharedMemory memory(RingBytes(kSlots, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, kSlots, kSlotSize).ok());
  auto ring = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  auto* header = static_cast<RingHeader*>(memory.data);
  std::vector<uint8_t> out(ring->max_message());
  header->tail.store(kSlots + 5);  // a hostile peer moves its position
  // The consumer goes by the slots, never the tail: nothing to take.
  auto popped = ring->TryPop(absl::MakeSpan(out));
  ASSERT_TRUE(popped.ok()) << popped.status();
  EXPECT_EQ(*popped, -1);
  EXPECT_EQ(ring->TryPush(Message(1)).status().code(), absl::StatusCode::kDataLoss);
  header->tail.store(1);
  uint32_t huge = 1u << 30;  // a slot that claims more than it holds
  std::memcpy(static_cast<uint8_t*>(memory.data) + sizeof(RingHeader), &huge, sizeof(huge));
  EXPECT_EQ(ring->TryPop(absl::MakeSpan(out)).status().code(), absl::StatusCode::kDataLoss);
}

// A slot announces itself: the consumer takes a message as soon as its word
// is set, before the tail moves, and leaves the word 0 behind it.
TEST(SpscRing, SlotsAnnounceThemselves) {
  SharedMemory memory(RingBytes(kSlots, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, kSlots, kSlotSize).ok());
  auto ring = SpscRing::Attach(memory.data, memory.size, kSlots, kSlotSize);
  ASSERT_TRUE(ring.ok());
  auto* header = static_cast<RingHeader*>(memory.data);
  uint8_t* slot0 = static_cast<uint8_t*>(memory.data) + sizeof(RingHeader);
  std::vector<uint8_t> out(ring->max_message());
  auto popped = ring->TryPop(absl::MakeSpan(out));
  ASSERT_TRUE(popped.ok());
  EXPECT_EQ(*popped, -1);
  // A producer half way: bytes and word written, tail not yet moved.
  const std::vector<uint8_t> message = Message(7);
  std::memcpy(slot0 + sizeof(uint32_t), message.data(), message.size());
  const uint32_t word = static_cast<uint32_t>(message.size()) + 1;
  std::memcpy(slot0, &word, sizeof(word));
  EXPECT_EQ(header->tail.load(), 0u);
  popped = ring->TryPop(absl::MakeSpan(out));
  ASSERT_TRUE(popped.ok()) << popped.status();
  ASSERT_EQ(*popped, static_cast<int64_t>(message.size()));
  EXPECT_TRUE(std::equal(message.begin(), message.end(), out.begin()));
  uint32_t after = 1;
  std::memcpy(&after, slot0, sizeof(after));
  EXPECT_EQ(after, 0u);
  EXPECT_EQ(header->head.load(), 1u);
  // An empty message is a word of 1, not an empty slot.
  header->tail.store(1);
  ASSERT_TRUE(ring->TryPush({}).ok());
  popped = ring->TryPop(absl::MakeSpan(out));
  ASSERT_TRUE(popped.ok());
  EXPECT_EQ(*popped, 0);
}

// Spin briefly, then sleep on the eventfd doorbell: no message is lost and no
// wake-up is missed (a missed one hangs this test).
TEST(SpscRing, TwoThreadsWithDoorbell) {
  constexpr uint64_t kMessages = 200000;
  SharedMemory memory(RingBytes(64, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, 64, kSlotSize).ok());
  const int doorbell = ::eventfd(0, EFD_CLOEXEC);
  uint64_t sleeps = 0;
  std::thread consumer([&] {
    auto ring = SpscRing::Attach(memory.data, memory.size, 64, kSlotSize);
    std::vector<uint8_t> out(ring->max_message());
    uint64_t expected = 0;
    while (expected < kMessages) {
      bool got = false;
      for (int spin = 0; spin < 200 && !got; ++spin) {
        auto n = ring->TryPop(absl::MakeSpan(out));
        ASSERT_TRUE(n.ok());
        if (*n < 0) continue;
        uint64_t value;
        std::memcpy(&value, out.data(), sizeof(value));
        ASSERT_EQ(value, expected++);
        got = true;
      }
      if (!got && ring->PrepareToSleep()) {
        uint64_t count;
        ASSERT_EQ(::read(doorbell, &count, sizeof(count)), static_cast<ssize_t>(sizeof(count)));
        ring->Awake();
        ++sleeps;
      }
    }
  });
  auto ring = SpscRing::Attach(memory.data, memory.size, 64, kSlotSize);
  for (uint64_t i = 0; i < kMessages;) {
    auto pushed = ring->TryPush(Message(i));
    ASSERT_TRUE(pushed.ok());
    if (!*pushed) {
      std::this_thread::yield();
      continue;
    }
    ++i;
    if (ring->ConsumerNeedsWakeup()) {
      const uint64_t one = 1;
      ASSERT_EQ(::write(doorbell, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
    }
    if (i % 50000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let it sleep
  }
  consumer.join();
  ::close(doorbell);
  EXPECT_GT(sleeps, 0u);  // the consumer did go to sleep, and was woken
}

TEST(SpscRing, TwoProcesses) {
  constexpr uint64_t kMessages = 100000;
  SharedMemory memory(RingBytes(32, kSlotSize));
  ASSERT_TRUE(SpscRing::Initialize(memory.data, memory.size, 32, kSlotSize).ok());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto ring = SpscRing::Attach(memory.data, memory.size, 32, kSlotSize);
    for (uint64_t i = 0; i < kMessages;) {
      auto pushed = ring->TryPush(Message(i, 40));
      if (!pushed.ok()) ::_exit(2);
      if (*pushed) ++i;
    }
    ::_exit(0);
  }
  auto ring = SpscRing::Attach(memory.data, memory.size, 32, kSlotSize);
  std::vector<uint8_t> out(ring->max_message());
  uint64_t expected = 0;
  while (expected < kMessages) {
    auto n = ring->TryPop(absl::MakeSpan(out));
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n < 0) continue;
    ASSERT_EQ(*n, 40);
    uint64_t value;
    std::memcpy(&value, out.data(), sizeof(value));
    ASSERT_EQ(value, expected++);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace axon::ring
