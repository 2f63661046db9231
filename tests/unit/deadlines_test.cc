// Deadlines against a fake clock: what expires and when, in which order,
// what completion and a closed session take away, and the heap's bound.
#include "daemon/engine/deadlines.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "tests/support/fake_clock.h"

namespace axon::daemon {
namespace {

using ::testing::ElementsAre;
using testing::FakeClock;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class DeadlinesTest : public ::testing::Test {
 protected:
  // (session, op) of what expired now.
  std::vector<std::pair<uint64_t, uint64_t>> Expire() {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    deadlines_.Expire([&](uint64_t session, uint64_t op_id, const absl::Status& why) {
      EXPECT_EQ(why.code(), absl::StatusCode::kDeadlineExceeded);
      last_why_ = std::string(why.message());
      out.emplace_back(session, op_id);
    });
    return out;
  }

  FakeClock clock_;
  Deadlines deadlines_{clock_};
  std::string last_why_;
};

TEST_F(DeadlinesTest, NothingExpiresBeforeItsTime) {
  deadlines_.Add(1, 10, 100, clock_.Now());
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_THAT(Expire(), IsEmpty());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_THAT(Expire(), ElementsAre(std::make_pair(1u, 10u)));
  EXPECT_THAT(last_why_, HasSubstr("deadline of 100 ms"));
  EXPECT_THAT(Expire(), IsEmpty());  // once
}

TEST_F(DeadlinesTest, TheEarliestExpiresFirstWhateverTheOrderAdded) {
  EXPECT_TRUE(deadlines_.Add(1, 10, 300, clock_.Now()));
  EXPECT_TRUE(deadlines_.Add(1, 11, 100, clock_.Now()));   // the new earliest
  EXPECT_FALSE(deadlines_.Add(2, 12, 200, clock_.Now()));  // not
  EXPECT_EQ(deadlines_.Next(), clock_.Now() + absl::Milliseconds(100));
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Expire(), ElementsAre(std::make_pair(1u, 11u), std::make_pair(2u, 12u),
                                    std::make_pair(1u, 10u)));
  EXPECT_EQ(deadlines_.Next(), std::nullopt);
}

TEST_F(DeadlinesTest, ACompletedOperationDoesNotExpire) {
  deadlines_.Add(1, 10, 100, clock_.Now());
  deadlines_.Add(1, 11, 100, clock_.Now());
  deadlines_.Done(1, 10);
  EXPECT_EQ(deadlines_.open(), 1u);
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Expire(), ElementsAre(std::make_pair(1u, 11u)));
}

TEST_F(DeadlinesTest, AClosedSessionsOperationsDoNotExpire) {
  deadlines_.Add(1, 10, 100, clock_.Now());
  deadlines_.Add(2, 10, 100, clock_.Now());
  deadlines_.SessionClosed(1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Expire(), ElementsAre(std::make_pair(2u, 10u)));
}

TEST_F(DeadlinesTest, CompletedEntriesDoNotPileUp) {
  // Long deadlines on operations that complete at once, the common case:
  // the heap keeps within a bound instead of holding each until its time.
  for (uint64_t op = 0; op < 100000; ++op) {
    deadlines_.Add(1, op, 60000, clock_.Now());
    deadlines_.Done(1, op);
  }
  EXPECT_EQ(deadlines_.open(), 0u);
  EXPECT_LE(deadlines_.entries(), 8192u);
  deadlines_.Add(1, 999999, 10, clock_.Now());
  clock_.Advance(absl::Milliseconds(10));
  EXPECT_THAT(Expire(), ElementsAre(std::make_pair(1u, 999999u)));
}

}  // namespace
}  // namespace axon::daemon
