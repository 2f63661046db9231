// HostCopier: pieces copied side by side land where they belong, across
// parts and for scattered blocks; `done` runs on RunFinished only, once per
// copy; a copier destroyed
// with copies under way runs none of theirs.
#include "daemon/engine/host_copier.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <cstring>
#include <numeric>
#include <vector>

namespace axon::daemon {
namespace {

bool WaitReadable(int fd, int ms) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, ms) == 1;
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed);
  return v;
}

TEST(HostCopier, ThreadsForAutoIsAQuarterOfTheCoresFromOneToEight) {
  EXPECT_EQ(HostCopier::ThreadsFor(5), 5);
  const int chosen = HostCopier::ThreadsFor(0);
  EXPECT_GE(chosen, 1);
  EXPECT_LE(chosen, 8);
}

TEST(HostCopier, CopiesEveryPartToItsPlaceAndRunsDoneOnce) {
  auto copier = HostCopier::Start(3, 1 << 20);
  ASSERT_TRUE(copier.ok()) << copier.status();
  EXPECT_EQ((*copier)->threads(), 3);
  EXPECT_TRUE((*copier)->Takes(1 << 20));
  EXPECT_FALSE((*copier)->Takes((1 << 20) - 1));
  // Parts that do not fall on piece boundaries, one empty.
  const auto a = Pattern((5u << 20) + 3, 1), b = Pattern(1u << 20, 2), c = Pattern(17, 3);
  const std::vector<uint8_t> empty;
  std::vector<uint8_t> into(a.size() + b.size() + c.size() + 64, 0xee);
  int done = 0;
  absl::Status result = absl::UnknownError("not run");
  (*copier)->Copy({absl::MakeConstSpan(a), absl::MakeConstSpan(empty), absl::MakeConstSpan(b),
                   absl::MakeConstSpan(c)},
                  into.data() + 1, {}, [&](absl::Status st) {
                    ++done;
                    result = st;
                  });
  EXPECT_EQ(done, 0);  // never on the copying threads
  while (done == 0) {
    ASSERT_TRUE(WaitReadable((*copier)->fd(), 10000));
    (*copier)->RunFinished();
  }
  EXPECT_EQ(done, 1);
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(into[0], 0xee);
  EXPECT_EQ(0, std::memcmp(into.data() + 1, a.data(), a.size()));
  EXPECT_EQ(0, std::memcmp(into.data() + 1 + a.size(), b.data(), b.size()));
  EXPECT_EQ(0, std::memcmp(into.data() + 1 + a.size() + b.size(), c.data(), c.size()));
  EXPECT_EQ(into[1 + a.size() + b.size() + c.size()], 0xee);
  EXPECT_EQ((*copier)->copies(), 1u);
  EXPECT_EQ((*copier)->bytes(), a.size() + b.size() + c.size());
}

TEST(HostCopier, ManyCopiesEachFinishOnce) {
  auto copier = HostCopier::Start(2, 1);
  ASSERT_TRUE(copier.ok());
  constexpr int kCopies = 50;
  const auto from = Pattern(3u << 20, 9);
  std::vector<std::vector<uint8_t>> to(kCopies, std::vector<uint8_t>(from.size()));
  std::vector<int> done(kCopies, 0);
  for (int i = 0; i < kCopies; ++i) {
    (*copier)->Copy({absl::MakeConstSpan(from)}, to[i].data(), {},
                    [&done, i](absl::Status) { ++done[i]; });
  }
  while (std::accumulate(done.begin(), done.end(), 0) < kCopies) {
    ASSERT_TRUE(WaitReadable((*copier)->fd(), 10000));
    (*copier)->RunFinished();
  }
  for (int i = 0; i < kCopies; ++i) {
    EXPECT_EQ(done[i], 1) << i;
    EXPECT_EQ(to[i], from) << i;
  }
}

TEST(HostCopier, ScatteredBlocksEachLandInTheirOwnPlaceOnce) {
  auto copier = HostCopier::Start(3, 1);
  ASSERT_TRUE(copier.ok());
  // A thousand 16 KiB blocks and a few odd sizes, to places in reverse
  // order: runs of neighbouring blocks go to one thread, none is split.
  constexpr size_t kBlocks = 1000, kBlock = 16384;
  const auto from = Pattern(kBlocks * kBlock + 7, 5);
  std::vector<uint8_t> to(from.size() + 2, 0xee);
  std::vector<HostCopier::Block> blocks;
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back(
        {from.data() + i * kBlock, to.data() + 1 + (kBlocks - 1 - i) * kBlock, kBlock});
  }
  blocks.push_back({from.data() + kBlocks * kBlock, to.data() + 1 + kBlocks * kBlock, 7});
  blocks.push_back({from.data(), to.data(), 0});
  int done = 0;
  (*copier)->Scatter(std::move(blocks), {}, [&](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st;
    ++done;
  });
  while (done == 0) {
    ASSERT_TRUE(WaitReadable((*copier)->fd(), 10000));
    (*copier)->RunFinished();
  }
  EXPECT_EQ(done, 1);
  EXPECT_EQ(to[0], 0xee);
  for (size_t i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(0, std::memcmp(to.data() + 1 + (kBlocks - 1 - i) * kBlock, from.data() + i * kBlock,
                             kBlock))
        << "block " << i;
  }
  EXPECT_EQ(0, std::memcmp(to.data() + 1 + kBlocks * kBlock, from.data() + kBlocks * kBlock, 7));
  EXPECT_EQ(to.back(), 0xee);
  EXPECT_EQ((*copier)->copies(), 1u);
  EXPECT_EQ((*copier)->bytes(), kBlocks * kBlock + 7);
}

TEST(HostCopier, AFewLargeScatteredBlocksAreCutForEveryThread) {
  auto copier = HostCopier::Start(4, 1);
  ASSERT_TRUE(copier.ok());
  // Two blocks of 6 MiB + 5 for four threads: each is cut (pieces of about
  // a quarter of the whole), and every byte lands once.
  const auto a = Pattern((6u << 20) + 5, 6), b = Pattern((6u << 20) + 5, 7);
  std::vector<uint8_t> to(a.size() + b.size(), 0xee);
  int done = 0;
  (*copier)->Scatter({{b.data(), to.data(), b.size()}, {a.data(), to.data() + b.size(), a.size()}},
                     {}, [&](absl::Status) { ++done; });
  while (done == 0) {
    ASSERT_TRUE(WaitReadable((*copier)->fd(), 10000));
    (*copier)->RunFinished();
  }
  EXPECT_EQ(0, std::memcmp(to.data(), b.data(), b.size()));
  EXPECT_EQ(0, std::memcmp(to.data() + b.size(), a.data(), a.size()));
  EXPECT_EQ((*copier)->bytes(), a.size() + b.size());
}

TEST(HostCopier, AnEmptyCopyFinishesToo) {
  auto copier = HostCopier::Start(1, 0);
  ASSERT_TRUE(copier.ok());
  bool done = false;
  (*copier)->Copy({}, nullptr, {}, [&](absl::Status) { done = true; });
  ASSERT_TRUE(WaitReadable((*copier)->fd(), 10000));
  (*copier)->RunFinished();
  EXPECT_TRUE(done);
}

TEST(HostCopier, DestroyedWithCopiesUnderWayRunsNoneOfTheirDone) {
  const auto from = Pattern(64u << 20, 4);
  std::vector<uint8_t> to(from.size());
  bool done = false;
  {
    auto copier = HostCopier::Start(2, 1);
    ASSERT_TRUE(copier.ok());
    for (int i = 0; i < 4; ++i) {
      (*copier)->Copy({absl::MakeConstSpan(from)}, to.data(), {},
                      [&](absl::Status) { done = true; });
    }
  }
  EXPECT_FALSE(done);
}

}  // namespace
}  // namespace axon::daemon
