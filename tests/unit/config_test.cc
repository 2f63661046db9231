// The config loader against a table of good and bad configs, --set layering,
// and the embedded default against config/axond.yaml.
#include "daemon/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "common/defaults.h"
#include "tests/support/process.h"

namespace axon::daemon {
namespace {

using ::testing::HasSubstr;

struct BadCase {
  std::string name;
  std::string yaml;
  std::vector<std::string> expected;  // substrings of the error
};

class ConfigFiles : public ::testing::Test {
 protected:
  absl::StatusOr<Config> LoadYaml(const std::string& yaml, std::vector<std::string> sets = {}) {
    const std::string path = dir_.File("axond.yaml");
    testing::WriteFile(path, yaml);
    return LoadConfig({.path = path, .sets = std::move(sets)});
  }
  testing::TempDir dir_;
};

TEST_F(ConfigFiles, DefaultsAloneLoad) {
  auto config = LoadConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->node.name.empty());  // the host name
  EXPECT_EQ(config->control.socket_mode, 0660u);
  EXPECT_EQ(config->log.level, "info");
  EXPECT_TRUE(config->control.allowed_uids.empty());
}

TEST_F(ConfigFiles, GoodFileOverridesDefaults) {
  auto config = LoadYaml(R"(
node:
  name: gpu-17
control:
  socket: /tmp/x/axond.sock
  socket_mode: "0600"
  socket_group: "0"
  allowed_uids: [1000, root]
  allowed_gids: [0]
log:
  level: debug
ucx:
  transports: tcp,sm
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->node.name, "gpu-17");
  EXPECT_EQ(config->control.socket, "/tmp/x/axond.sock");
  EXPECT_EQ(config->control.socket_mode, 0600u);
  EXPECT_EQ(config->control.socket_gid, 0u);
  EXPECT_EQ(config->control.allowed_uids, (std::vector<uid_t>{1000, 0}));
  EXPECT_EQ(config->control.allowed_gids, (std::vector<gid_t>{0}));
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_EQ(config->ucx.transports, "tcp,sm");
}

TEST_F(ConfigFiles, PartialFileKeepsOtherDefaults) {
  auto config = LoadYaml("log:\n  level: warn\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log.level, "warn");
  EXPECT_EQ(config->control.socket_mode, 0660u);
}

TEST_F(ConfigFiles, EmptyFileIsDefaults) {
  auto config = LoadYaml("");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log.level, "info");
}

TEST_F(ConfigFiles, BadConfigsNameKeyFileAndLine) {
  const std::vector<BadCase> cases = {
      {"unknown key",
       "control:\n  sockt: /x\n",
       {"axond.yaml:2:3", "unknown key 'control.sockt'", "socket_mode"}},
      {"unknown section",
       "contrl:\n  socket: /x\n",
       {"axond.yaml:1:1", "unknown section 'contrl'"}},
      {"section not a map", "control: 5\n", {"axond.yaml:1:10", "section 'control' must be a map"}},
      {"root not a map", "- a\n- b\n", {"expected a map of sections"}},
      {"bad yaml", "control:\n  socket: [unclosed\n", {"axond.yaml:", "not valid YAML"}},
      {"string given a list",
       "log:\n  level: [info]\n",
       {"axond.yaml:2:3", "log.level", "expected a string"}},
      {"bad log level",
       "log:\n  level: loud\n",
       {"axond.yaml:2:3", "log.level", "unknown log level 'loud'"}},
      {"relative socket path",
       "control:\n  socket: run/axond.sock\n",
       {"axond.yaml:2:3", "control.socket", "must be absolute"}},
      {"socket path too long",
       "control:\n  socket: /" + std::string(120, 'a') + "\n",
       {"control.socket", "at most 107"}},
      {"socket path is a directory",
       "control:\n  socket: /tmp/\n",
       {"control.socket", "names a directory"}},
      {"mode not octal",
       "control:\n  socket_mode: \"0968\"\n",
       {"axond.yaml:2:3", "control.socket_mode", "octal file mode"}},
      {"mode out of range",
       "control:\n  socket_mode: \"1777\"\n",
       {"control.socket_mode", "octal file mode"}},
      {"mode locks out owner",
       "control:\n  socket_mode: \"0066\"\n",
       {"control.socket_mode", "need 0600"}},
      {"mode is a word", "control:\n  socket_mode: rw\n", {"control.socket_mode"}},
      {"unknown group",
       "control:\n  socket_group: no-such-group-axon\n",
       {"control.socket_group", "no such group 'no-such-group-axon'"}},
      {"uids not a list",
       "control:\n  allowed_uids: 1000\n",
       {"axond.yaml:2:3", "control.allowed_uids", "expected a list"}},
      {"unknown user",
       "control:\n  allowed_uids: [no-such-user-axon]\n",
       {"no such user 'no-such-user-axon'"}},
      {"nested list in uids", "control:\n  allowed_uids: [[1]]\n", {"control.allowed_uids"}},
      {"bad node name", "node:\n  name: \"a b\"\n", {"axond.yaml:2:3", "node.name", "1 to 63"}},
      {"node name too long", "node:\n  name: " + std::string(64, 'n') + "\n", {"node.name"}},
      {"bad transports",
       "ucx:\n  transports: \"tcp; rm -rf\"\n",
       {"ucx.transports", "UCX_TLS syntax"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto config = LoadYaml(c.yaml);
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    for (const auto& expected : c.expected) {
      EXPECT_THAT(std::string(config.status().message()), HasSubstr(expected));
    }
  }
}

TEST_F(ConfigFiles, MissingFileIsNotFound) {
  auto config = LoadConfig({.path = dir_.File("absent.yaml")});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("absent.yaml"));
}

TEST_F(ConfigFiles, SetOverridesFileAndParsesYamlValues) {
  auto config = LoadYaml("log:\n  level: warn\n",
                         {"log.level=error", "control.allowed_uids=[7, 8]", "node.name=n1"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log.level, "error");
  EXPECT_EQ(config->control.allowed_uids, (std::vector<uid_t>{7, 8}));
  EXPECT_EQ(config->node.name, "n1");
}

TEST_F(ConfigFiles, BadSetsAreRefusedWithTheArgument) {
  for (const auto& [set, expected] : std::vector<std::pair<std::string, std::string>>{
           {"log.level", "expected section.key=value"},
           {"loglevel=debug", "expected section.key=value"},
           {"nope.level=debug", "unknown section 'nope'"},
           {"log.lvl=debug", "unknown key 'log.lvl'"},
           {"control.socket_mode=999", "control.socket_mode"},
           {"gpu.same_host=ipc", "gpu.same_host"},
       }) {
    SCOPED_TRACE(set);
    auto config = LoadConfig({.sets = {set}});
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("--set " + set));
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(expected));
  }
}

TEST_F(ConfigFiles, SocketDefaultsToEnvironment) {
  ::setenv(kSocketEnvVar, "/tmp/from-env.sock", 1);
  auto config = LoadConfig({});
  ::unsetenv(kSocketEnvVar);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->control.socket, "/tmp/from-env.sock");

  ::setenv(kSocketEnvVar, "relative.sock", 1);
  auto bad = LoadConfig({});
  ::unsetenv(kSocketEnvVar);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("$AXON_SOCKET"));
}

TEST(ExampleConfig, LoadsWithTheMetricsEndpointOnLoopback) {
  auto config = LoadConfig({.path = AXON_TEST_EXAMPLE_CONFIG});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(config->peers.static_peers.size(), 2u);
}

TEST(Config, MetricsListenIsOffByDefaultAndChecked) {
  auto config = LoadConfig({});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics.listen, "");
  auto bad = LoadConfig({.sets = {"metrics.listen=localhost"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("metrics.listen"));
}

TEST(DefaultConfig, IsTheFileInTheRepository) {
  EXPECT_EQ(std::string(DefaultConfigYaml()), testing::ReadFile(AXON_TEST_DEFAULT_CONFIG));
}

TEST(DefaultConfig, DocumentsEveryKeyTheSchemaKnows) {
  auto keys = KeysSetBy(DefaultConfigYaml(), "default");
  ASSERT_TRUE(keys.ok()) << keys.status();
  auto expected = ConfigKeys();
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*keys, expected);
}

TEST(DefaultConfig, EveryKeyHasAComment) {
  const std::string text(DefaultConfigYaml());
  for (const std::string& key : ConfigKeys()) {
    const std::string leaf = key.substr(key.find('.') + 1) + ":";
    const size_t at = text.find("  " + leaf);
    ASSERT_NE(at, std::string::npos) << key;
    const size_t line_start = text.rfind('\n', at - 1);
    const size_t prev_start = text.rfind('\n', line_start - 1);
    const std::string previous = text.substr(prev_start + 1, line_start - prev_start - 1);
    EXPECT_THAT(previous, HasSubstr("#")) << key << " has no comment above it";
  }
}

}  // namespace
}  // namespace axon::daemon
