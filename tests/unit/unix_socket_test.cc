#include "common/unix_socket.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/process_info.h"
#include "tests/support/process.h"

namespace axon {
namespace {

using ::testing::HasSubstr;

TEST(UnixSocket, PeerCredentialsAreOurs) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  auto creds = GetPeerCredentials(a.get());
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->pid, ::getpid());
  EXPECT_EQ(creds->uid, ::geteuid());
  EXPECT_EQ(creds->gid, ::getegid());
}

TEST(UnixSocket, PeerCredentialsOfANonSocketFail) {
  EXPECT_FALSE(GetPeerCredentials(0).ok() && GetPeerCredentials(-1).ok());
  EXPECT_FALSE(GetPeerCredentials(-1).ok());
}

TEST(UnixSocket, ProbeSeesAbsentLiveStaleAndOther) {
  testing::TempDir dir;
  const std::string path = dir.File("s.sock");
  EXPECT_EQ(*ProbeUnixSocket(path), SocketProbe::kAbsent);
  {
    auto listener = ListenUnixSocket(path, {});
    ASSERT_TRUE(listener.ok()) << listener.status();
    EXPECT_EQ(*ProbeUnixSocket(path), SocketProbe::kLive);
  }
  // The listener is closed but its file remains: what a crashed daemon leaves.
  EXPECT_EQ(*ProbeUnixSocket(path), SocketProbe::kStale);
  testing::WriteFile(dir.File("plain"), "x");
  EXPECT_EQ(*ProbeUnixSocket(dir.File("plain")), SocketProbe::kNotSocket);
}

TEST(UnixSocket, ListenReplacesStaleRefusesLiveAndOther) {
  testing::TempDir dir;
  const std::string path = dir.File("s.sock");
  { ASSERT_TRUE(ListenUnixSocket(path, {}).ok()); }
  auto replaced = ListenUnixSocket(path, {});
  ASSERT_TRUE(replaced.ok()) << replaced.status();

  auto second = ListenUnixSocket(path, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("already listening"));

  testing::WriteFile(dir.File("plain"), "x");
  auto over_file = ListenUnixSocket(dir.File("plain"), {});
  ASSERT_FALSE(over_file.ok());
  EXPECT_THAT(std::string(over_file.status().message()), HasSubstr("not a socket"));
  EXPECT_EQ(testing::ReadFile(dir.File("plain")), "x");
}

TEST(UnixSocket, ListenAppliesModeAndGroup) {
  testing::TempDir dir;
  const std::string path = dir.File("s.sock");
  auto fd = ListenUnixSocket(path, {.mode = 0640, .gid = ::getegid()});
  ASSERT_TRUE(fd.ok()) << fd.status();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(st.st_gid, ::getegid());
}

TEST(UnixSocket, ListenRefusesBadPaths) {
  EXPECT_EQ(ListenUnixSocket("", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListenUnixSocket("/" + std::string(200, 'x'), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto missing_dir = ListenUnixSocket("/nonexistent-axon-dir/s.sock", {});
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_THAT(std::string(missing_dir.status().message()), HasSubstr("/nonexistent-axon-dir"));
}

TEST(UnixSocket, ConnectReachesListener) {
  testing::TempDir dir;
  const std::string path = dir.File("s.sock");
  auto listener = ListenUnixSocket(path, {});
  ASSERT_TRUE(listener.ok());
  auto conn = ConnectUnixSocket(path);
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(ConnectUnixSocket(dir.File("none.sock")).status().code(), absl::StatusCode::kNotFound);
}

TEST(ProcessInfo, ReadsOurSupplementaryGroups) {
  auto groups = SupplementaryGroups(::getpid());
  ASSERT_TRUE(groups.ok()) << groups.status();
  std::vector<gid_t> expected(static_cast<size_t>(::getgroups(0, nullptr)));
  ::getgroups(static_cast<int>(expected.size()), expected.data());
  EXPECT_THAT(*groups, ::testing::UnorderedElementsAreArray(expected));
  EXPECT_FALSE(SupplementaryGroups(0).ok());
}

}  // namespace
}  // namespace axon
