// Sessions: one per attached client process. A session is opened by Attach
// (gRPC), bound to the client's session socket by a Hello carrying its token,
// and holds the memory the client registered. It is closed by Detach, when
// its session socket closes, or when its process exits (a pidfd watched on
// the io_context), and closing it releases everything it held.
#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/annotated_mutex.h"
#include "common/unique_fd.h"
#include "common/unix_socket.h"
#include "daemon/fd_budget.h"
#include "daemon/memory/cuda_region.h"
#include "daemon/memory/host_region.h"
#include "daemon/session/shard_placement.h"
#include "daemon/window/window_table.h"

namespace axon::daemon {

inline constexpr size_t kSessionTokenBytes = 32;
inline constexpr size_t kMaxClientNameLength = 128;

struct SessionLimits {
  uint64_t max_registered_bytes = uint64_t{64} << 30;
  uint64_t max_regions = 4096;
  uint64_t max_sessions = 1024;
  uint64_t max_per_uid = 256;
  uint64_t max_per_process = 64;
  uint64_t max_endpoints = 256;
  // From Attach to the session socket's hello, and from a connection to
  // the session socket to its hello.
  absl::Duration socket_timeout = absl::Seconds(10);
};

// A call server's counts for one endpoint and method, as its client last
// reported them (ReportCalls).
struct CallReport {
  std::string endpoint, method;
  uint64_t calls = 0, errors = 0, in_flight = 0, dropped_replies = 0;
  double p50_us = 0, p99_us = 0;
  std::vector<uint64_t> latency_below_pow2_us;  // cumulative, as reported
  double latency_sum_us = 0;
};
inline constexpr size_t kMaxCallReports = 256;
inline constexpr size_t kMaxLatencyBuckets = 32;

struct SessionSnapshot {
  uint64_t id = 0;
  std::string client_name;
  // Sessions naming one placement are served by one engine shard
  // (ShardPlacement); empty: none.
  std::string placement;
  uint32_t shard = 0;  // the engine shard that serves it (EngineShards::ShardOf)
  PeerCredentials creds;
  absl::Time attached;
  bool socket_bound = false;
  uint64_t registered_bytes = 0;
  uint64_t regions = 0;
  uint64_t gpu_regions = 0;  // of `regions`
  std::vector<std::string> endpoints;
  std::vector<CallReport> calls;
};

struct AttachResult {
  uint64_t id = 0;
  std::string token;  // kSessionTokenBytes random bytes
};

class SessionManager {
 public:
  // `fds`, if set, must outlive the manager: Attach refuses new sessions
  // while it says descriptors are short.
  SessionManager(asio::io_context& io, SessionLimits limits, const FdBudget* fds = nullptr)
      : io_(io), limits_(limits), fds_(fds) {}
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // All thread-safe.
  // RESOURCE_EXHAUSTED past sessions.max_sessions, max_per_uid or
  // max_per_process, or while file descriptors are short; the session is
  // closed if its session socket does not say hello within
  // limits.socket_timeout.
  // `placement` (up to 128 printable characters, "" for none): sessions
  // that name the same one are served by the same engine shard.
  absl::StatusOr<AttachResult> Attach(const PeerCredentials& caller, std::string client_name,
                                      std::string placement = "");
  // The engine's shard count, before any session attaches (axond starts
  // the shards before the control socket): session ids are then chosen so
  // that each placement's sessions share a shard.
  void SetShards(size_t shards);
  const SessionLimits& limits() const { return limits_; }
  absl::Status Detach(uint64_t id, absl::string_view token);
  // A session socket presented `token` for session `id`.
  absl::Status BindSocket(uint64_t id, absl::string_view token, const PeerCredentials& caller);
  // Maps a client's memfd; returns the region id: `wanted`, or one the
  // manager picks when that is 0. ALREADY_EXISTS when `wanted` is in use.
  absl::StatusOr<uint64_t> RegisterHost(uint64_t id, UniqueFd memfd, uint64_t length,
                                        uint64_t wanted = 0);
  // Opens a client's GPU memory: a legacy IPC handle (request.handle), or the
  // VMM allocation exported as `vmm_fd`. Returns the region id, picked as
  // RegisterHost does.
  struct CudaRequest {
    std::string device;  // PCI bus id
    std::string handle;  // legacy IPC handle
    uint64_t size = 0;   // VMM: the allocation's size
    uint64_t offset = 0, length = 0;
    uint64_t wanted = 0;  // the region id the client asks for; 0: any
  };
  absl::StatusOr<uint64_t> RegisterCuda(uint64_t id, const CudaRequest& request, UniqueFd vmm_fd);
  absl::Status Unregister(uint64_t id, uint64_t region);
  // Endpoint names are unique on the node; a session's go when it closes.
  absl::Status BindEndpoint(uint64_t id, absl::string_view token, const std::string& name);
  // Replaces the session's call report for the endpoints it names;
  // INVALID_ARGUMENT past
  // kMaxCallReports entries or for names over 128 bytes.
  absl::Status ReportCalls(uint64_t id, absl::string_view token, std::vector<CallReport> calls);
  absl::Status UnbindEndpoint(uint64_t id, absl::string_view token, const std::string& name);
  // The session that bound `name`, if any.
  std::optional<uint64_t> EndpointOwner(const std::string& name) const;
  // Changes whenever an endpoint is bound or released: a cache of
  // EndpointOwner read after reading this is good while it stays the same.
  uint64_t endpoint_generation() const {
    return endpoint_generation_.load(std::memory_order_acquire);
  }
  // Called (outside the manager's lock) for every session closed, so other
  // parts can release what they hold for it. Set before serving.
  void SetCloseObserver(std::function<void(uint64_t id)> observer) {
    close_observer_ = std::move(observer);
  }
  // Windows over a session's regions are revoked (and waited for) when the
  // region is unregistered or the session closes. Set before serving.
  void SetWindows(WindowTable* windows) { windows_ = windows; }
  WindowTable* windows() const { return windows_; }
  // How long revocation waits for operations that still use a window.
  static constexpr absl::Duration kRevokeWait = absl::Seconds(10);
  // OK when `token` is session `id`'s.
  absl::Status CheckToken(uint64_t id, absl::string_view token);
  // Removes session `id` and releases what it held; false if already gone.
  bool Close(uint64_t id, absl::string_view why);
  std::vector<SessionSnapshot> List() const;
  bool IsOpen(uint64_t id) const;
  // Region `region` of session `id`, kept mapped while the caller holds it.
  std::shared_ptr<Region> FindRegion(uint64_t id, uint64_t region) const;
  // Changes whenever a region is unregistered or a session closes: a cache
  // of FindRegion read after reading this is good while it stays the same.
  uint64_t region_generation() const { return region_generation_.load(std::memory_order_acquire); }
  CudaRegistryStats cuda_stats() const { return cuda_.stats(); }
  std::shared_ptr<IpcMappings> ipc_mappings() const { return cuda_.ipc(); }

  // Requests refused past a bound, by the bound's config key
  // ("sessions.max_per_uid"); every key is there from the start, at 0.
  std::map<std::string, uint64_t> refusals() const;

  uint64_t attached_total() const { return attached_total_.load(); }
  uint64_t closed_total() const { return closed_total_.load(); }
  size_t active() const;

 private:
  struct Session {
    SessionSnapshot info;
    std::string token;
    uint64_t next_region = 1;
    // Shared: an operation in flight keeps its region mapped.
    std::map<uint64_t, std::shared_ptr<Region>> regions;
    // Readable when the client process exits; touched only on io_'s thread.
    std::shared_ptr<asio::posix::stream_descriptor> pid_watch;
  };

  // Closes session `id` when its process exits (the pidfd `watch`).
  void WatchProcess(uint64_t id, pid_t pid, std::shared_ptr<asio::posix::stream_descriptor> watch);
  // Closes session `id` unless its session socket said hello by then.
  void ExpectSocket(uint64_t id);
  // OK unless a session cap would be passed by one more for `caller`.
  absl::Status CheckCaps(const PeerCredentials& caller) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts one refusal past the bound `key`; returns `why`.
  absl::Status Refused(absl::string_view key, absl::Status why) const;
  // Checks the session's limits for `length` more bytes and that `wanted`
  // is free, runs `make`, and files what it made under `wanted` (or a new
  // region id when 0).
  absl::StatusOr<uint64_t> Register(
      uint64_t id, uint64_t length, uint64_t wanted,
      absl::FunctionRef<absl::StatusOr<std::shared_ptr<Region>>()> make);

  asio::io_context& io_;
  const SessionLimits limits_;
  const FdBudget* const fds_;
  mutable Mutex mu_;
  // Finds session `id` and checks `token`.
  absl::StatusOr<Session*> Authorized(uint64_t id, absl::string_view token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::map<uint64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> endpoints_ ABSL_GUARDED_BY(mu_);  // name -> session
  std::atomic<uint64_t> endpoint_generation_{0};  // bumped under mu_ after endpoints_ changes
  std::atomic<uint64_t> region_generation_{0};    // bumped under mu_ after a region goes
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  ShardPlacement placement_ ABSL_GUARDED_BY(mu_);
  std::function<void(uint64_t)> close_observer_;
  WindowTable* windows_ = nullptr;
  CudaRegistry cuda_;
  mutable Mutex refused_mu_;
  mutable std::map<std::string, uint64_t, std::less<>> refused_ ABSL_GUARDED_BY(refused_mu_);
  std::atomic<uint64_t> attached_total_{0};
  std::atomic<uint64_t> closed_total_{0};
};

}  // namespace axon::daemon
