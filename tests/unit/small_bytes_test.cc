// SmallBytes: inline up to its size, on the heap beyond, and moves that
// keep the bytes and leave the source empty either way.
#include "common/small_bytes.h"

#include <gtest/gtest.h>

#include <numeric>
#include <utility>
#include <vector>

namespace axon {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint8_t first) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<uint8_t> Contents(const SmallBytes<16>& b) { return {b.begin(), b.end()}; }

TEST(SmallBytes, InlineUpToItsSizeAndOnTheHeapBeyond) {
  SmallBytes<16> b;
  EXPECT_TRUE(b.empty());
  for (size_t n : {0, 1, 15, 16, 17, 100, 16, 3}) {
    const auto want = Bytes(n, static_cast<uint8_t>(n));
    b.assign(want.data(), n);
    EXPECT_EQ(Contents(b), want) << n;
    EXPECT_EQ(b.size(), n);
  }
  SmallBytes<16> small;
  small.assign(Bytes(16, 0).data(), 16);
  EXPECT_FALSE(small.on_heap());
  SmallBytes<16> large;
  large.assign(Bytes(17, 0).data(), 17);
  EXPECT_TRUE(large.on_heap());
}

TEST(SmallBytes, MovesKeepTheBytesAndEmptyTheSource) {
  for (size_t n : {0, 5, 16, 40}) {
    const auto want = Bytes(n, 7);
    SmallBytes<16> a;
    a.assign(want.data(), n);
    SmallBytes<16> b(std::move(a));
    EXPECT_EQ(Contents(b), want) << n;
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    SmallBytes<16> c;
    c.assign(Bytes(30, 1).data(), 30);  // its own heap block, freed by the move in
    c = std::move(b);
    EXPECT_EQ(Contents(c), want) << n;
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    a = std::move(c);        // the emptied one takes bytes again
    EXPECT_EQ(Contents(a), want) << n;
  }
}

TEST(SmallBytes, ResizeKeepsRoomForTheBytesToBeWritten) {
  SmallBytes<16> b;
  b.Resize(1000);
  ASSERT_EQ(b.size(), 1000u);
  const auto want = Bytes(1000, 3);
  std::copy(want.begin(), want.end(), b.data());
  EXPECT_EQ(Contents(b), want);
}

}  // namespace
}  // namespace axon
