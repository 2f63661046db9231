// Membership through etcd with authentication (etcd's own Auth API) and
// over TLS (a CA and a certificate made here with openssl), and etcd
// settings refused at start.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/integration/etcd_fixture.h"

namespace axon::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// etcd with authentication on (its own Auth API, as etcdctl would do it):
// daemons with the right user and password join; one with a wrong password
// does not, and says why.
TEST_F(EtcdTest, UserAndPasswordFromTheConfigAuthenticate) {
  auto channel = grpc::CreateChannel(etcd_->endpoint(), grpc::InsecureChannelCredentials());
  auto auth = etcdserverpb::Auth::NewStub(channel);
  auto call = [](auto method) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    return method(&context);
  };
  etcdserverpb::AuthUserAddRequest user;
  user.set_name("root");
  user.set_password("s3cret-pass");
  etcdserverpb::AuthUserAddResponse user_added;
  ASSERT_TRUE(
      call([&](grpc::ClientContext* c) { return auth->UserAdd(c, user, &user_added); }).ok());
  etcdserverpb::AuthRoleAddRequest role;
  role.set_name("root");
  etcdserverpb::AuthRoleAddResponse role_added;
  (void)call([&](grpc::ClientContext* c) { return auth->RoleAdd(c, role, &role_added); });
  etcdserverpb::AuthUserGrantRoleRequest grant;
  grant.set_user("root");
  grant.set_role("root");
  etcdserverpb::AuthUserGrantRoleResponse granted;
  ASSERT_TRUE(
      call([&](grpc::ClientContext* c) { return auth->UserGrantRole(c, grant, &granted); }).ok());
  etcdserverpb::AuthEnableResponse enabled;
  const grpc::Status on = call([&](grpc::ClientContext* c) {
    return auth->AuthEnable(c, etcdserverpb::AuthEnableRequest(), &enabled);
  });
  ASSERT_TRUE(on.ok()) << on.error_message();

  const std::string good = dir_.File("good-password"), bad = dir_.File("bad-password");
  WriteFile(good, "s3cret-pass\n");
  WriteFile(bad, "not-it\n");
  ASSERT_EQ(::chmod(good.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(bad.c_str(), 0600), 0);
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1", {"etcd.user=root", "etcd.password_file=" + good}));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2", {"etcd.user=root", "etcd.password_file=" + good}));
  ASSERT_NO_FATAL_FAILURE(Launch(2, "n3", {"etcd.user=root", "etcd.password_file=" + bad}));
  EXPECT_TRUE(WaitFor([&] { return BothListed(); }, 15s)) << daemons_[0]->process().Log();
  EXPECT_EQ(MembershipHealth(0), "ok");
  EXPECT_TRUE(Ping(0, "n2"));
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(2) == "DEGRADED"; }, 10s));
  EXPECT_THAT(Nodes(2).last_error(), HasSubstr("authenticating as 'root'"));
  EXPECT_FALSE(Lists(0, "n3"));
}

// etcd over TLS: a CA and a certificate for 127.0.0.1 made here with
// openssl. Daemons given the CA (etcd.ca_file) join; one without TLS cannot.
class EtcdTlsTest : public EtcdTest {
 protected:
  void SetUp() override {
    const std::string ca_key = dir_.File("ca.key"), ca = dir_.File("ca.pem");
    const std::string key = dir_.File("etcd.key"), csr = dir_.File("etcd.csr");
    const std::string cert = dir_.File("etcd.pem"), ext = dir_.File("san.ext");
    WriteFile(ext, "subjectAltName=IP:127.0.0.1\n");
    for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
             {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
              ca_key, "-out", ca, "-days", "1", "-subj", "/CN=axon-test-ca"},
             {"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
              csr, "-subj", "/CN=127.0.0.1"},
             {"/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
              "-CAcreateserial", "-out", cert, "-days", "1", "-extfile", ext}}) {
      RunResult r = RunProgram(argv);
      ASSERT_EQ(r.exit_code, 0) << argv[1] << ": " << r.err;
    }
    tls_cert_ = cert;
    tls_key_ = key;
    ca_ = ca;
    EtcdTest::SetUp();
  }
  std::string ca_;
};

TEST_F(EtcdTlsTest, DaemonsWithTheCaJoinOverTls) {
  ASSERT_NO_FATAL_FAILURE(Launch(0, "n1", {"etcd.ca_file=" + ca_}));
  ASSERT_NO_FATAL_FAILURE(Launch(1, "n2", {"etcd.ca_file=" + ca_}));
  ASSERT_NO_FATAL_FAILURE(Launch(2, "n3"));  // plain text to a TLS server
  EXPECT_TRUE(WaitFor([&] { return BothListed(); }, 15s)) << daemons_[0]->process().Log();
  EXPECT_EQ(MembershipHealth(0), "ok");
  EXPECT_TRUE(Ping(0, "n2"));
  EXPECT_TRUE(WaitFor([&] { return MembershipHealth(2) == "DEGRADED"; }, 10s));
  EXPECT_FALSE(Lists(0, "n3"));
}

TEST_F(EtcdTest, BadEtcdSettingsAreRefusedAtStart) {
  const std::string file = dir_.File("check.yaml");
  WriteFile(file, "log:\n  level: info\n");
  RunResult r = RunProgram({AxondPath(), "--set", "peers.discovery=etcd", "--set",
                            "peers.listen=127.0.0.1:0", "--check-config", file});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("etcd.endpoints is empty"));
  r = RunProgram({AxondPath(), "--set", "peers.discovery=zookeeper", "--check-config", file});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("\"static\" or \"etcd\""));
  r = RunProgram({AxondPath(), "--set", "peers.discovery=etcd", "--set", "etcd.endpoints=[\"x:1\"]",
                  "--check-config", file});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err + r.out, HasSubstr("peers.listen is empty"));
}

}  // namespace
}  // namespace axon::testing
