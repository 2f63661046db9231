// axond's configuration: the typed result of layering the embedded default
// (config/axond.yaml), an optional YAML file and `--set key=value` overrides.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace axon::daemon {

struct Config {
  struct Node {
    std::string name;  // never empty after LoadConfig: defaults to the host name
  } node;
  struct Control {
    std::string socket;  // never empty after LoadConfig
    unsigned socket_mode = 0;
    std::optional<gid_t> socket_gid;  // nullopt: axond's own group
    std::vector<uid_t> allowed_uids;
    std::vector<gid_t> allowed_gids;
  } control;
  struct Log {
    std::string level;
  } log;
  struct Ucx {
    std::string transports;
  } ucx;
  struct PeerEntry {
    std::string name;
    std::string address;  // "ip:port"
  };
  struct Peers {
    std::string listen;  // "ip:port"; empty: no peer plane
    std::vector<PeerEntry> static_peers;
    std::string token_file;
    std::string token;  // read from token_file by LoadConfig
    int reconnect_min_ms = 0;
    int reconnect_max_ms = 0;
    int keepalive_ms = 0;
    int dead_after_ms = 0;
    int eager_limit = 0;          // bytes: larger messages go rendezvous
    int max_in_flight = 0;        // messages per peer sent and not yet acknowledged
    std::string discovery;        // "static" or "etcd"
    int idle_close_ms = 0;        // etcd members' connections idle this long close; 0: never
    std::string window_transfer;  // other daemons' writes and reads of windows here: rma, frames
    std::string advertise;        // "ip:port" others dial; empty: the listener's address
  } peers;
  struct Etcd {
    std::vector<std::string> endpoints;  // "host:port"
    std::string prefix;                  // ends in '/'
    int lease_ttl_ms = 0;
    int retry_min_ms = 0;
    int retry_max_ms = 0;
    std::string ca_file, cert_file, key_file;
    std::string user;
    std::string password_file;
    std::string password;  // read from password_file by LoadConfig
  } etcd;
  struct Gpu {
    // How GPU buffers travel to other nodes: "auto", "direct" or "staging".
    std::string remote_path;
    // Idle bounce buffers kept per GPU (device memory) and for all GPUs
    // (pinned host memory), in MiB; more is freed as it comes back.
    int64_t bounce_keep_mib = 0;
    // GPU buffers to a daemon on this host: "handles" (by CUDA IPC handle,
    // one copy) or "bounce" (like any other node, by remote_path).
    std::string same_host;
  } gpu;
  struct Sessions {
    int64_t max_registered_bytes = 0;  // per session
    int64_t max_regions = 0;           // per session
    int64_t max_in_flight = 0;         // operations per session not yet completed
    int64_t max_sessions = 0;          // attached at once, all clients
    int64_t max_per_uid = 0;           // attached at once by one user
    int64_t max_per_process = 0;       // attached at once by one process
    int64_t max_endpoints = 0;         // per session
    int64_t max_windows = 0;           // windows exposed, per session
    int64_t socket_timeout_ms = 0;     // attach -> session socket, connect -> hello
    int64_t fd_reserve = 0;            // descriptors kept free (FdBudget)
  } sessions;
  struct Engine {
    int shards = 0;                     // engine threads; 0: EngineShards::CountFor picks
    int copy_threads = 0;               // 0: HostCopier::ThreadsFor picks
    int64_t parallel_copy_min_kib = 0;  // local copies this large go to them
    std::string remote;                 // messages to other nodes from shards 1..N-1: own, shard0
  } engine;
  struct Metrics {
    std::string listen;  // "ip:port" of the Prometheus endpoint; empty: off
  } metrics;
};

// Where a configuration comes from, lowest layer first after the defaults.
struct ConfigSources {
  std::string path;               // YAML file; empty: defaults only
  std::vector<std::string> sets;  // "section.key=value", applied in order
};

// The session socket (fd passing, liveness) lives beside the control socket.
inline constexpr char kSessionSocketSuffix[] = ".session";
std::string SessionSocketPath(const Config& config);

// Loads and validates. Errors name the key and where it was set:
// "FILE:LINE:COL: control.socket_mode: ...".
absl::StatusOr<Config> LoadConfig(const ConfigSources& sources);

// The commented default configuration, byte for byte config/axond.yaml.
absl::string_view DefaultConfigYaml();

// Every key the schema knows, as "section.key".
std::vector<std::string> ConfigKeys();

// The keys that `yaml_text` sets (validated like a config file); for checking
// that the default file documents every key.
absl::StatusOr<std::vector<std::string>> KeysSetBy(absl::string_view yaml_text,
                                                   absl::string_view source_name);

}  // namespace axon::daemon
