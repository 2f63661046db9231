// Sessions: one per attached client process. A session is opened by Attach,
// closed by Detach, and reaped when its process exits (watched with a pidfd
// on the io_context, so a client killed with SIGKILL leaves nothing behind).
#pragma once

#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unix_socket.h"

namespace axon::daemon {

inline constexpr size_t kSessionTokenBytes = 32;
inline constexpr size_t kMaxClientNameLength = 128;

struct SessionSnapshot {
  uint64_t id = 0;
  std::string client_name;
  PeerCredentials creds;
  absl::Time attached;
};

struct AttachResult {
  uint64_t id = 0;
  std::string token;  // kSessionTokenBytes random bytes
};

class SessionManager {
 public:
  explicit SessionManager(asio::io_context& io) : io_(io) {}
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // Thread-safe.
  absl::StatusOr<AttachResult> Attach(const PeerCredentials& caller, std::string client_name);
  absl::Status Detach(uint64_t id, absl::string_view token);
  std::vector<SessionSnapshot> List() const;

  uint64_t attached_total() const { return attached_total_.load(); }
  uint64_t closed_total() const { return closed_total_.load(); }
  size_t active() const;

 private:
  struct Session {
    SessionSnapshot info;
    std::string token;
    // Readable when the client process exits; touched only on io_'s thread.
    std::shared_ptr<asio::posix::stream_descriptor> pid_watch;
  };

  void WatchProcess(uint64_t id, pid_t pid);
  // Removes session `id`; returns false if it was already gone.
  bool Close(uint64_t id, absl::string_view why);

  asio::io_context& io_;
  mutable std::mutex mu_;
  std::map<uint64_t, Session> sessions_;  // guarded by mu_
  uint64_t next_id_ = 1;                  // guarded by mu_
  std::atomic<uint64_t> attached_total_{0};
  std::atomic<uint64_t> closed_total_{0};
};

}  // namespace axon::daemon
