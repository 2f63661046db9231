#include "daemon/session/session_manager.h"

#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace axon::daemon {
namespace {

absl::StatusOr<std::string> RandomToken() {
  std::string token(kSessionTokenBytes, '\0');
  size_t filled = 0;
  while (filled < token.size()) {
    const ssize_t n = ::getrandom(token.data() + filled, token.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    filled += static_cast<size_t>(n);
  }
  return token;
}

// Compares without an early exit, so timing does not reveal a token prefix.
bool TokensEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

absl::Status CheckClientName(absl::string_view name) {
  if (name.size() > kMaxClientNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("client_name is ", name.size(),
                                                   " bytes long; at most ",
                                                   kMaxClientNameLength, " allowed"));
  }
  for (char c : name) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("client_name must be printable ASCII");
    }
  }
  return absl::OkStatus();
}

}  // namespace

SessionManager::~SessionManager() {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.clear();
}

absl::StatusOr<AttachResult> SessionManager::Attach(const PeerCredentials& caller,
                                                    std::string client_name) {
  if (auto st = CheckClientName(client_name); !st.ok()) return st;
  auto token = RandomToken();
  if (!token.ok()) return token.status();
  AttachResult result;
  {
    std::lock_guard<std::mutex> lock(mu_);
    result.id = next_id_++;
    Session& session = sessions_[result.id];
    session.info = {result.id, std::move(client_name), caller, absl::Now()};
    session.token = *token;
  }
  result.token = *std::move(token);
  attached_total_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("session {} attached: pid {} uid {} gid {}", result.id, caller.pid, caller.uid,
               caller.gid);
  if (caller.pid > 0) {
    WatchProcess(result.id, caller.pid);
  } else {
    spdlog::warn("session {}: caller's pid is not visible here (another pid namespace?); "
                 "it is closed only by Detach",
                 result.id);
  }
  return result;
}

void SessionManager::WatchProcess(uint64_t id, pid_t pid) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    // The process may already be gone; then the session is already dead.
    const int err = errno;
    if (err == ESRCH) {
      Close(id, "process exited before it was watched");
    } else {
      spdlog::warn("session {}: cannot watch pid {}: {}", id, pid, std::strerror(err));
    }
    return;
  }
  auto watch = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;  // detached already; `watch` closes the fd
    it->second.pid_watch = watch;
  }
  asio::post(io_, [this, id, pid, watch] {
    watch->async_wait(asio::posix::stream_descriptor::wait_read,
                      [this, id, pid, watch](std::error_code ec) {
                        if (ec) return;  // cancelled: the session was closed
                        Close(id, absl::StrCat("process ", pid, " exited"));
                      });
  });
}

absl::Status SessionManager::Detach(uint64_t id, absl::string_view token) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      return absl::NotFoundError(absl::StrCat("no session ", id, " (closed already?)"));
    }
    if (!TokensEqual(it->second.token, token)) {
      return absl::PermissionDeniedError(absl::StrCat("wrong token for session ", id));
    }
  }
  Close(id, "detached");
  return absl::OkStatus();
}

bool SessionManager::Close(uint64_t id, absl::string_view why) {
  std::shared_ptr<asio::posix::stream_descriptor> watch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return false;
    watch = std::move(it->second.pid_watch);
    sessions_.erase(it);
  }
  closed_total_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("session {} closed: {}", id, why);
  if (watch) {
    asio::post(io_, [watch] {
      std::error_code ignored;
      watch->close(ignored);
    });
  }
  return true;
}

std::vector<SessionSnapshot> SessionManager::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SessionSnapshot> out;
  out.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) out.push_back(session.info);
  return out;
}

size_t SessionManager::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

}  // namespace axon::daemon
