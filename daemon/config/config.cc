#include "daemon/config/config.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/defaults.h"
#include "common/unix_socket.h"
#include "daemon/config/schema.h"

namespace axon::daemon {

// Generated from config/axond.yaml by daemon/CMakeLists.txt.
extern const char kDefaultConfigYaml[];

namespace {

std::string Location(absl::string_view source, const YAML::Mark& mark) {
  if (mark.is_null()) return std::string(source);
  return absl::StrCat(source, ":", mark.line + 1, ":", mark.column + 1);
}

// Applies YAML documents to a Config, one layer at a time, through the schema.
class ConfigLayers {
 public:
  ConfigLayers() {
    for (const ConfigField& field : ConfigSchema()) {
      fields_[field.section][field.key] = &field;
    }
  }

  absl::Status ApplyText(absl::string_view text, absl::string_view source) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(Location(source, e.mark), ": not valid YAML: ", e.msg));
    }
    if (root.IsNull()) return absl::OkStatus();  // an empty file changes nothing
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Location(source, root.Mark()), ": expected a map of sections (node, control, ...)"));
    }
    for (const auto& section : root) {
      const std::string name = section.first.Scalar();
      auto it = fields_.find(name);
      if (it == fields_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(Location(source, section.first.Mark()),
                                                       ": unknown section '", name,
                                                       "' (known: ", KnownSections(), ")"));
      }
      if (section.second.IsNull()) continue;
      if (!section.second.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat(Location(source, section.second.Mark()),
                                                       ": section '", name, "' must be a map"));
      }
      for (const auto& entry : section.second) {
        if (auto st = ApplyValue(name, entry.first.Scalar(), entry.second,
                                 Location(source, entry.first.Mark()));
            !st.ok()) {
          return st;
        }
      }
    }
    return absl::OkStatus();
  }

  // "--set section.key=value": the value is read as YAML, so lists work too.
  absl::Status ApplySet(absl::string_view assignment) {
    const std::string where = absl::StrCat("--set ", assignment);
    const size_t eq = assignment.find('=');
    const size_t dot = assignment.find('.');
    if (eq == absl::string_view::npos || dot == absl::string_view::npos || dot > eq) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected section.key=value, e.g. log.level=debug"));
    }
    const std::string section(assignment.substr(0, dot));
    const std::string key(assignment.substr(dot + 1, eq - dot - 1));
    YAML::Node value;
    try {
      value = YAML::Load(std::string(assignment.substr(eq + 1)));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": value is not valid YAML: ", e.msg));
    }
    if (fields_.find(section) == fields_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown section '", section, "' (known: ", KnownSections(), ")"));
    }
    return ApplyValue(section, key, value, where);
  }

  Config& config() { return config_; }
  const std::set<std::string>& keys_set() const { return keys_set_; }

 private:
  absl::Status ApplyValue(const std::string& section, const std::string& key,
                          const YAML::Node& value, const std::string& where) {
    const auto& keys = fields_.at(section);
    auto it = keys.find(key);
    if (it == keys.end()) {
      std::vector<std::string> known;
      for (const auto& [k, unused] : keys) known.push_back(k);
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", section, ".", key,
                                                     "' (known in '", section,
                                                     "': ", absl::StrJoin(known, ", "), ")"));
    }
    if (auto st = it->second->apply(value, config_); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", section, ".", key, ": ", st.message()));
    }
    keys_set_.insert(it->second->FullKey());
    return absl::OkStatus();
  }

  std::string KnownSections() const {
    std::vector<std::string> names;
    for (const auto& [name, unused] : fields_) names.push_back(name);
    return absl::StrJoin(names, ", ");
  }

  std::map<std::string, std::map<std::string, const ConfigField*>> fields_;
  Config config_;
  std::set<std::string> keys_set_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  // Keep the short name: "gpu-17.cluster.local" is "gpu-17" to its peers.
  std::string host(name);
  return host.substr(0, std::min(host.find('.'), size_t{63}));
}

// A secret's file: only its owner may read it; a trailing newline is not part
// of the secret.
absl::StatusOr<std::string> ReadSecret(const char* key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(key, ": cannot read ", path));
  }
  if ((st.st_mode & 0077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(key, ": ", path, " is readable by group or others (mode ",
                     absl::StrFormat("%04o", st.st_mode & 0777), "); chmod 600 it"));
  }
  auto secret = ReadFile(path);
  if (!secret.ok()) return secret.status();
  while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) {
    secret->pop_back();
  }
  return secret;
}

// Checks that span several peers.* keys, and reads the token file.
absl::Status CheckPeers(Config::Peers& peers) {
  if (peers.reconnect_min_ms > peers.reconnect_max_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("peers.reconnect_min_ms (", peers.reconnect_min_ms,
                     ") exceeds peers.reconnect_max_ms (", peers.reconnect_max_ms, ")"));
  }
  if (peers.dead_after_ms < 2 * peers.keepalive_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("peers.dead_after_ms (", peers.dead_after_ms,
                     ") must be at least twice peers.keepalive_ms (", peers.keepalive_ms,
                     "), or a peer is declared dead between two keepalives"));
  }
  if (peers.idle_close_ms != 0 && peers.idle_close_ms < 2 * peers.dead_after_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("peers.idle_close_ms (", peers.idle_close_ms,
                     ") must be 0 or at least twice peers.dead_after_ms (", peers.dead_after_ms,
                     "): a connection with work under way is never that quiet"));
  }
  if (!peers.static_peers.empty() && peers.listen.empty()) {
    return absl::InvalidArgumentError("peers.static lists peers but peers.listen is empty");
  }
  if (peers.token_file.empty()) return absl::OkStatus();
  auto token = ReadSecret("peers.token_file", peers.token_file);
  if (!token.ok()) return token.status();
  if (token->size() < 16) {
    return absl::InvalidArgumentError(absl::StrCat("peers.token_file: the token in ",
                                                   peers.token_file, " is shorter than 16 bytes"));
  }
  peers.token = *std::move(token);
  return absl::OkStatus();
}

// Checks that span peers.discovery and the etcd.* keys, and reads the
// password file.
absl::Status CheckEtcd(const Config::Peers& peers, Config::Etcd& etcd) {
  if (peers.discovery != "etcd") return absl::OkStatus();
  if (peers.listen.empty()) {
    return absl::InvalidArgumentError("peers.discovery is etcd but peers.listen is empty");
  }
  if (!peers.static_peers.empty()) {
    return absl::InvalidArgumentError(
        "peers.static lists peers but peers.discovery is etcd: use one or the other");
  }
  if (etcd.endpoints.empty()) {
    return absl::InvalidArgumentError("peers.discovery is etcd but etcd.endpoints is empty");
  }
  if (etcd.retry_min_ms > etcd.retry_max_ms) {
    return absl::InvalidArgumentError(absl::StrCat("etcd.retry_min_ms (", etcd.retry_min_ms,
                                                   ") exceeds etcd.retry_max_ms (",
                                                   etcd.retry_max_ms, ")"));
  }
  if ((etcd.cert_file.empty() != etcd.key_file.empty()) ||
      (!etcd.cert_file.empty() && etcd.ca_file.empty())) {
    return absl::InvalidArgumentError(
        "etcd.cert_file and etcd.key_file go together, and with etcd.ca_file (TLS)");
  }
  if (etcd.user.empty() != etcd.password_file.empty()) {
    return absl::InvalidArgumentError("etcd.user and etcd.password_file go together");
  }
  if (etcd.password_file.empty()) return absl::OkStatus();
  auto password = ReadSecret("etcd.password_file", etcd.password_file);
  if (!password.ok()) return password.status();
  etcd.password = *std::move(password);
  return absl::OkStatus();
}

}  // namespace

absl::string_view DefaultConfigYaml() { return kDefaultConfigYaml; }

std::vector<std::string> ConfigKeys() {
  std::vector<std::string> keys;
  for (const ConfigField& field : ConfigSchema()) keys.push_back(field.FullKey());
  return keys;
}

absl::StatusOr<std::vector<std::string>> KeysSetBy(absl::string_view yaml_text,
                                                   absl::string_view source_name) {
  ConfigLayers layers;
  if (auto st = layers.ApplyText(yaml_text, source_name); !st.ok()) return st;
  return std::vector<std::string>(layers.keys_set().begin(), layers.keys_set().end());
}

absl::StatusOr<Config> LoadConfig(const ConfigSources& sources) {
  ConfigLayers layers;
  if (auto st = layers.ApplyText(DefaultConfigYaml(), "<embedded default config>"); !st.ok()) {
    return st;
  }
  if (!sources.path.empty()) {
    auto text = ReadFile(sources.path);
    if (!text.ok()) return text.status();
    if (auto st = layers.ApplyText(*text, sources.path); !st.ok()) return st;
  }
  for (const std::string& assignment : sources.sets) {
    if (auto st = layers.ApplySet(assignment); !st.ok()) return st;
  }
  Config config = std::move(layers.config());
  if (auto st = CheckPeers(config.peers); !st.ok()) return st;
  if (auto st = CheckEtcd(config.peers, config.etcd); !st.ok()) return st;
  if (config.node.name.empty()) config.node.name = HostName();
  if (config.control.socket.empty()) {
    config.control.socket = DefaultSocketPath();
    if (auto st = CheckSocketPath(config.control.socket); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("$", kSocketEnvVar, ": ", st.message()));
    }
  }
  if (config.control.socket.size() + std::strlen(kSessionSocketSuffix) >
      MaxUnixSocketPathLength()) {
    return absl::InvalidArgumentError(
        absl::StrCat("control.socket: '", config.control.socket,
                     "' leaves no room for the session socket beside it ('", kSessionSocketSuffix,
                     "' appended must fit in ", MaxUnixSocketPathLength(), " bytes)"));
  }
  return config;
}

std::string SessionSocketPath(const Config& config) {
  return config.control.socket + kSessionSocketSuffix;
}

}  // namespace axon::daemon
