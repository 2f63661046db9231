#include "daemon/config/schema.h"

#include <grp.h>
#include <pwd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/net_address.h"
#include "common/unix_socket.h"

namespace axon::daemon {
namespace {

// YAML null (an empty value) reads as "".
absl::StatusOr<std::string> AsString(const YAML::Node& value) {
  if (value.IsNull()) return std::string();
  if (!value.IsScalar())
    return absl::InvalidArgumentError("expected a string, found a list or map");
  return value.Scalar();
}

absl::StatusOr<unsigned> AsOctalMode(const YAML::Node& value) {
  auto text = AsString(value);
  if (!text.ok()) return text.status();
  unsigned mode = 0;
  bool ok = !text->empty() && text->size() <= 4;
  for (char c : *text) {
    if (c < '0' || c > '7') ok = false;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  if (!ok || mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an octal file mode from \"0000\" to \"0777\", like \"0660\"; found '", *text,
        "'"));
  }
  if ((mode & 0600) != 0600) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mode ", *text, " would not let axond's own user read and write its socket (need 0600)"));
  }
  return mode;
}

// Resolves a user or group given as a name or a number.
template <typename Id>
absl::StatusOr<Id> ResolveId(const std::string& text, bool is_group) {
  uint32_t number = 0;
  if (absl::SimpleAtoi(text, &number)) return static_cast<Id>(number);
  if (is_group) {
    if (const group* g = ::getgrnam(text.c_str()); g != nullptr) return static_cast<Id>(g->gr_gid);
  } else {
    if (const passwd* p = ::getpwnam(text.c_str()); p != nullptr) return static_cast<Id>(p->pw_uid);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no such ", is_group ? "group" : "user", " '", text, "' on this machine"));
}

template <typename Id>
absl::StatusOr<std::vector<Id>> AsIdList(const YAML::Node& value, bool is_group) {
  if (value.IsNull()) return std::vector<Id>();
  if (!value.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat("expected a list of ",
                                                   is_group ? "group" : "user",
                                                   " names or numbers, like [1000, alice]"));
  }
  std::vector<Id> ids;
  for (const YAML::Node& item : value) {
    if (!item.IsScalar()) {
      return absl::InvalidArgumentError(
          "expected a name or number in the list, found a list or map");
    }
    auto id = ResolveId<Id>(item.Scalar(), is_group);
    if (!id.ok()) return id.status();
    ids.push_back(*id);
  }
  return ids;
}

absl::Status CheckNodeName(const std::string& name) {
  if (name.empty()) return absl::OkStatus();  // the host name is used
  bool ok = name.size() <= 63;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("node name '", name, "' must be 1 to 63 letters, digits, '.', '_' or '-'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSocketPath(const std::string& path) {
  if (path.empty()) return absl::OkStatus();  // $AXON_SOCKET or the default is used
  if (path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path '", path, "' must be absolute (start with '/')"));
  }
  if (path.size() > MaxUnixSocketPathLength()) {
    return absl::InvalidArgumentError(absl::StrCat("socket path is ", path.size(),
                                                   " bytes long; Unix sockets allow at most ",
                                                   MaxUnixSocketPathLength()));
  }
  if (path.back() == '/') {
    return absl::InvalidArgumentError(absl::StrCat("socket path '", path, "' names a directory"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckTransports(const std::string& list) {
  for (absl::string_view tl : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    for (char c : tl) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '^' &&
          c != '\\') {
        return absl::InvalidArgumentError(absl::StrCat(
            "transport list '", list, "' is not in UCX_TLS syntax (names separated by commas)"));
      }
    }
  }
  return absl::OkStatus();
}

// A string field, checked by `check` when given.
template <typename Section>
ConfigField Str(std::string section, std::string key, Section Config::*sec,
                std::string Section::*field, absl::Status (*check)(const std::string&)) {
  return {std::move(section), std::move(key),
          [sec, field, check](const YAML::Node& value, Config& config) -> absl::Status {
            auto text = AsString(value);
            if (!text.ok()) return text.status();
            if (check != nullptr) {
              if (auto st = check(*text); !st.ok()) return st;
            }
            config.*sec.*field = *std::move(text);
            return absl::OkStatus();
          }};
}

absl::Status CheckLogLevel(const std::string& level) { return ParseLogLevel(level).status(); }

absl::Status CheckGpuPath(const std::string& path) {
  if (path == "auto" || path == "direct" || path == "staging") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", path, "' is not one of auto, direct, staging"));
}

absl::Status CheckSameHost(const std::string& how) {
  if (how == "handles" || how == "bounce") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("'", how, "' is not one of handles, bounce"));
}

absl::Status CheckWindowTransfer(const std::string& how) {
  if (how == "rma" || how == "frames") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("'", how, "' is not one of rma, frames"));
}

absl::Status CheckEngineRemote(const std::string& how) {
  if (how == "own" || how == "shard0") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("'", how, "' is not one of own, shard0"));
}

absl::Status CheckFilePath(const std::string& path) {
  if (path.empty() || path.front() == '/') return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("path '", path, "' must be absolute"));
}

absl::Status CheckAddress(const std::string& address) {
  if (address.empty()) return absl::OkStatus();
  return ParseSocketAddress(address).status();
}

// An integer field within [min, max].
template <typename Section, typename Number>
ConfigField Int(std::string section, std::string key, Section Config::*sec, Number Section::*field,
                Number min, Number max) {
  return {std::move(section), std::move(key),
          [sec, field, min, max](const YAML::Node& value, Config& config) -> absl::Status {
            Number number = 0;
            if (!value.IsScalar() || !absl::SimpleAtoi(value.Scalar(), &number) || number < min ||
                number > max) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "expected a whole number from ", min, " to ", max, ", found '",
                  value.IsScalar() ? value.Scalar() : std::string("a list or map"), "'"));
            }
            config.*sec.*field = number;
            return absl::OkStatus();
          }};
}

absl::Status ApplyStaticPeers(const YAML::Node& value, Config& config) {
  config.peers.static_peers.clear();
  if (value.IsNull()) return absl::OkStatus();
  if (!value.IsSequence()) {
    return absl::InvalidArgumentError(
        "expected a list of {name: NODE, address: \"ip:port\"} entries");
  }
  for (const YAML::Node& item : value) {
    if (!item.IsMap() || !item["name"] || !item["address"] || item.size() != 2 ||
        !item["name"].IsScalar() || !item["address"].IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", item.Mark().line + 1,
          ": each peer needs exactly a name and an address, like {name: node-b, address: "
          "\"10.0.0.2:13337\"}"));
    }
    Config::PeerEntry entry{item["name"].Scalar(), item["address"].Scalar()};
    if (entry.name.empty()) return absl::InvalidArgumentError("a peer has an empty name");
    if (auto st = CheckNodeName(entry.name); !st.ok()) return st;
    if (auto st = ParseSocketAddress(entry.address).status(); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("peer '", entry.name, "': ", st.message()));
    }
    for (const auto& other : config.peers.static_peers) {
      if (other.name == entry.name) {
        return absl::InvalidArgumentError(absl::StrCat("peer '", entry.name, "' is listed twice"));
      }
    }
    config.peers.static_peers.push_back(std::move(entry));
  }
  return absl::OkStatus();
}

absl::Status CheckDiscovery(const std::string& value) {
  if (value == "static" || value == "etcd") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("expected \"static\" or \"etcd\", found '", value, "'"));
}

absl::Status CheckEtcdPrefix(const std::string& value) {
  if (value.empty() || value.back() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("the prefix must end in '/', like \"/axon/\"; found '", value, "'"));
  }
  return absl::OkStatus();
}

absl::Status ApplyEtcdEndpoints(const YAML::Node& value, Config& config) {
  config.etcd.endpoints.clear();
  if (value.IsNull()) return absl::OkStatus();
  if (!value.IsSequence()) {
    return absl::InvalidArgumentError("expected a list of \"host:port\", like [\"10.0.0.5:2379\"]");
  }
  for (const YAML::Node& item : value) {
    if (!item.IsScalar() || item.Scalar().find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", item.Mark().line + 1, ": each etcd endpoint is \"host:port\""));
    }
    config.etcd.endpoints.push_back(item.Scalar());
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<ConfigField>& ConfigSchema() {
  static const auto* schema = new std::vector<ConfigField>{
      Str("node", "name", &Config::node, &Config::Node::name, &CheckNodeName),
      Str("control", "socket", &Config::control, &Config::Control::socket, &CheckSocketPath),
      {"control", "socket_mode",
       [](const YAML::Node& value, Config& config) -> absl::Status {
         auto mode = AsOctalMode(value);
         if (!mode.ok()) return mode.status();
         config.control.socket_mode = *mode;
         return absl::OkStatus();
       }},
      {"control", "socket_group",
       [](const YAML::Node& value, Config& config) -> absl::Status {
         auto text = AsString(value);
         if (!text.ok()) return text.status();
         config.control.socket_gid.reset();
         if (text->empty()) return absl::OkStatus();
         auto gid = ResolveId<gid_t>(*text, /*is_group=*/true);
         if (!gid.ok()) return gid.status();
         config.control.socket_gid = *gid;
         return absl::OkStatus();
       }},
      {"control", "allowed_uids",
       [](const YAML::Node& value, Config& config) -> absl::Status {
         auto ids = AsIdList<uid_t>(value, /*is_group=*/false);
         if (!ids.ok()) return ids.status();
         config.control.allowed_uids = *std::move(ids);
         return absl::OkStatus();
       }},
      {"control", "allowed_gids",
       [](const YAML::Node& value, Config& config) -> absl::Status {
         auto ids = AsIdList<gid_t>(value, /*is_group=*/true);
         if (!ids.ok()) return ids.status();
         config.control.allowed_gids = *std::move(ids);
         return absl::OkStatus();
       }},
      Str("log", "level", &Config::log, &Config::Log::level, &CheckLogLevel),
      Str("ucx", "transports", &Config::ucx, &Config::Ucx::transports, &CheckTransports),
      Str("peers", "listen", &Config::peers, &Config::Peers::listen, &CheckAddress),
      {"peers", "static", &ApplyStaticPeers},
      Str("peers", "token_file", &Config::peers, &Config::Peers::token_file, &CheckFilePath),
      Int("peers", "reconnect_min_ms", &Config::peers, &Config::Peers::reconnect_min_ms, 10, 60000),
      Int("peers", "reconnect_max_ms", &Config::peers, &Config::Peers::reconnect_max_ms, 10,
          600000),
      Int("peers", "keepalive_ms", &Config::peers, &Config::Peers::keepalive_ms, 50, 60000),
      Int("peers", "dead_after_ms", &Config::peers, &Config::Peers::dead_after_ms, 100, 600000),
      Int("peers", "eager_limit", &Config::peers, &Config::Peers::eager_limit, 0, 1 << 20),
      Int("peers", "max_in_flight", &Config::peers, &Config::Peers::max_in_flight, 1, 1 << 20),
      Str("peers", "discovery", &Config::peers, &Config::Peers::discovery, &CheckDiscovery),
      Str("peers", "advertise", &Config::peers, &Config::Peers::advertise, &CheckAddress),
      Int("peers", "idle_close_ms", &Config::peers, &Config::Peers::idle_close_ms, 0, 86400000),
      Str("peers", "window_transfer", &Config::peers, &Config::Peers::window_transfer,
          &CheckWindowTransfer),
      {"etcd", "endpoints", &ApplyEtcdEndpoints},
      Str("etcd", "prefix", &Config::etcd, &Config::Etcd::prefix, &CheckEtcdPrefix),
      Int("etcd", "lease_ttl_ms", &Config::etcd, &Config::Etcd::lease_ttl_ms, 1000, 3600000),
      Int("etcd", "retry_min_ms", &Config::etcd, &Config::Etcd::retry_min_ms, 10, 60000),
      Int("etcd", "retry_max_ms", &Config::etcd, &Config::Etcd::retry_max_ms, 10, 600000),
      Str("etcd", "ca_file", &Config::etcd, &Config::Etcd::ca_file, &CheckFilePath),
      Str("etcd", "cert_file", &Config::etcd, &Config::Etcd::cert_file, &CheckFilePath),
      Str("etcd", "key_file", &Config::etcd, &Config::Etcd::key_file, &CheckFilePath),
      Str("etcd", "user", &Config::etcd, &Config::Etcd::user, nullptr),
      Str("etcd", "password_file", &Config::etcd, &Config::Etcd::password_file, &CheckFilePath),
      Str("gpu", "remote_path", &Config::gpu, &Config::Gpu::remote_path, &CheckGpuPath),
      Int("gpu", "bounce_keep_mib", &Config::gpu, &Config::Gpu::bounce_keep_mib, int64_t{0},
          int64_t{1} << 20),
      Str("gpu", "same_host", &Config::gpu, &Config::Gpu::same_host, &CheckSameHost),
      Int("sessions", "max_registered_bytes", &Config::sessions,
          &Config::Sessions::max_registered_bytes, int64_t{1}, int64_t{1} << 50),
      Int("sessions", "max_regions", &Config::sessions, &Config::Sessions::max_regions, int64_t{1},
          int64_t{1} << 20),
      Int("sessions", "max_in_flight", &Config::sessions, &Config::Sessions::max_in_flight,
          int64_t{1}, int64_t{1} << 24),
      Int("sessions", "max_sessions", &Config::sessions, &Config::Sessions::max_sessions,
          int64_t{1}, int64_t{1} << 20),
      Int("sessions", "max_per_uid", &Config::sessions, &Config::Sessions::max_per_uid, int64_t{1},
          int64_t{1} << 20),
      Int("sessions", "max_per_process", &Config::sessions, &Config::Sessions::max_per_process,
          int64_t{1}, int64_t{1} << 20),
      Int("sessions", "max_endpoints", &Config::sessions, &Config::Sessions::max_endpoints,
          int64_t{1}, int64_t{1} << 20),
      Int("sessions", "max_windows", &Config::sessions, &Config::Sessions::max_windows, int64_t{1},
          int64_t{1} << 20),
      Int("sessions", "socket_timeout_ms", &Config::sessions, &Config::Sessions::socket_timeout_ms,
          int64_t{100}, int64_t{600000}),
      Int("sessions", "fd_reserve", &Config::sessions, &Config::Sessions::fd_reserve, int64_t{16},
          int64_t{1} << 20),
      Int("engine", "shards", &Config::engine, &Config::Engine::shards, 0, 64),
      Int("engine", "copy_threads", &Config::engine, &Config::Engine::copy_threads, 0, 64),
      Int("engine", "parallel_copy_min_kib", &Config::engine,
          &Config::Engine::parallel_copy_min_kib, int64_t{64}, int64_t{1} << 30),
      Str("engine", "remote", &Config::engine, &Config::Engine::remote, &CheckEngineRemote),
      Str("metrics", "listen", &Config::metrics, &Config::Metrics::listen, &CheckAddress),
  };
  return *schema;
}

}  // namespace axon::daemon
