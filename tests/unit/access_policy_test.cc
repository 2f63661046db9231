#include "daemon/access_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace axon::daemon {
namespace {

TEST(AccessPolicy, AllowsRootSelfListedUsersAndGroups) {
  const AccessPolicy policy(/*daemon_uid=*/500, {1000}, {2000});
  EXPECT_TRUE(policy.Check({.pid = 1, .uid = 0, .gid = 0}, {}).ok());
  EXPECT_TRUE(policy.Check({.pid = 1, .uid = 500, .gid = 500}, {}).ok());
  EXPECT_TRUE(policy.Check({.pid = 1, .uid = 1000, .gid = 1000}, {}).ok());
  EXPECT_TRUE(policy.Check({.pid = 1, .uid = 1001, .gid = 2000}, {}).ok());
  EXPECT_TRUE(policy.Check({.pid = 1, .uid = 1001, .gid = 1001}, {30, 2000}).ok());
}

TEST(AccessPolicy, RefusesEveryoneElseWithAReason) {
  const AccessPolicy policy(500, {1000}, {2000});
  absl::Status st = policy.Check({.pid = 77, .uid = 1001, .gid = 1001}, {30, 40});
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("uid 1001"));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("control.allowed_uids"));
}

}  // namespace
}  // namespace axon::daemon
