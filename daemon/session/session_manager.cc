#include "daemon/session/session_manager.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/secrets.h"

namespace axon::daemon {
namespace {

absl::StatusOr<std::string> RandomToken() {
  std::string token(kSessionTokenBytes, '\0');
  if (auto st = FillRandom(absl::MakeSpan(reinterpret_cast<uint8_t*>(token.data()), token.size()));
      !st.ok()) {
    return st;
  }
  return token;
}

// A client_name or a placement: at most kMaxClientNameLength printable
// characters.
absl::Status CheckName(absl::string_view field, absl::string_view name) {
  if (name.size() > kMaxClientNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", name.size(), " bytes long; at most ", kMaxClientNameLength, " allowed"));
  }
  for (char c : name) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat(field, " must be printable ASCII"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

SessionManager::~SessionManager() {
  MutexLock lock(&mu_);
  sessions_.clear();
}

namespace {

// The bounds whose refusals SessionManager::refusals() counts.
constexpr absl::string_view kRefusalKeys[] = {
    "sessions.max_sessions",        "sessions.max_per_uid",   "sessions.max_per_process",
    "sessions.fd_reserve",          "sessions.max_endpoints", "sessions.max_regions",
    "sessions.max_registered_bytes"};

}  // namespace

absl::Status SessionManager::Refused(absl::string_view key, absl::Status why) const {
  MutexLock lock(&refused_mu_);
  auto it = refused_.find(key);
  if (it == refused_.end()) it = refused_.emplace(std::string(key), 0).first;
  ++it->second;
  return why;
}

std::map<std::string, uint64_t> SessionManager::refusals() const {
  std::map<std::string, uint64_t> out;
  for (absl::string_view key : kRefusalKeys) out[std::string(key)] = 0;
  MutexLock lock(&refused_mu_);
  for (const auto& [key, n] : refused_) out[key] = n;
  return out;
}

absl::Status SessionManager::CheckCaps(const PeerCredentials& caller) const {
  if (sessions_.size() >= limits_.max_sessions) {
    return Refused("sessions.max_sessions", absl::ResourceExhaustedError(absl::StrCat(
                                                "axond serves ", sessions_.size(),
                                                " sessions already (sessions.max_sessions)")));
  }
  uint64_t same_uid = 0, same_process = 0;
  for (const auto& [id, session] : sessions_) {
    same_uid += session.info.creds.uid == caller.uid;
    same_process += caller.pid > 0 && session.info.creds.pid == caller.pid;
  }
  if (same_uid >= limits_.max_per_uid) {
    return Refused("sessions.max_per_uid", absl::ResourceExhaustedError(absl::StrCat(
                                               "uid ", caller.uid, " has ", same_uid,
                                               " sessions already (sessions.max_per_uid)")));
  }
  if (same_process >= limits_.max_per_process) {
    return Refused(
        "sessions.max_per_process",
        absl::ResourceExhaustedError(absl::StrCat("process ", caller.pid, " has ", same_process,
                                                  " sessions already (sessions.max_per_process)")));
  }
  return absl::OkStatus();
}

absl::StatusOr<AttachResult> SessionManager::Attach(const PeerCredentials& caller,
                                                    std::string client_name,
                                                    std::string placement) {
  if (auto st = CheckName("client_name", client_name); !st.ok()) return st;
  if (auto st = CheckName("placement", placement); !st.ok()) return st;
  if (fds_ != nullptr) {
    if (auto st = fds_->CheckSession(); !st.ok()) return Refused("sessions.fd_reserve", st);
  }
  auto token = RandomToken();
  if (!token.ok()) return token.status();
  // The watch on the caller's process comes first: a session that cannot be
  // watched for its process's death is never made.
  std::shared_ptr<asio::posix::stream_descriptor> watch;
  bool no_pidfd = false;
  if (caller.pid > 0) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, caller.pid, 0));
    const int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
      watch = std::make_shared<asio::posix::stream_descriptor>(io_, fd);
    } else if (err == ESRCH) {
      return absl::FailedPreconditionError(
          absl::StrCat("process ", caller.pid, " exited before its session was made"));
    } else if (err == ENOSYS) {
      // A kernel before 5.3, or valgrind: the session socket is the watch.
      no_pidfd = true;
    } else {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot watch process ", caller.pid, " for its exit: ", std::strerror(err)));
    }
  }
  AttachResult result;
  {
    MutexLock lock(&mu_);
    if (auto st = CheckCaps(caller); !st.ok()) return st;
    result.id = placement_.Place(next_id_, placement);
    next_id_ = result.id + 1;
    Session& session = sessions_[result.id];
    session.info.id = result.id;
    session.info.client_name = std::move(client_name);
    session.info.placement = std::move(placement);
    session.info.creds = caller;
    session.info.attached = absl::Now();
    session.token = *token;
    session.pid_watch = watch;
  }
  result.token = *std::move(token);
  attached_total_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("session {} attached: pid {} uid {} gid {}", result.id, caller.pid, caller.uid,
               caller.gid);
  if (watch) {
    WatchProcess(result.id, caller.pid, std::move(watch));
  } else {
    spdlog::warn("session {}: {}; it is closed only by Detach or when its session socket closes",
                 result.id,
                 no_pidfd ? "no pidfd_open here to watch the caller's process"
                          : "caller's pid is not visible here (another pid namespace?)");
  }
  ExpectSocket(result.id);
  return result;
}

void SessionManager::WatchProcess(uint64_t id, pid_t pid,
                                  std::shared_ptr<asio::posix::stream_descriptor> watch) {
  asio::post(io_, [this, id, pid, watch] {
    watch->async_wait(asio::posix::stream_descriptor::wait_read,
                      [this, id, pid, watch](std::error_code ec) {
                        if (ec) return;  // cancelled: the session was closed
                        Close(id, absl::StrCat("process ", pid, " exited"));
                      });
  });
}

void SessionManager::ExpectSocket(uint64_t id) {
  // The timer lives in its handler; a session closed or bound meanwhile is
  // found so when it fires, and nothing else is held.
  auto timer =
      std::make_shared<asio::steady_timer>(io_, absl::ToChronoNanoseconds(limits_.socket_timeout));
  timer->async_wait([this, id, timer](std::error_code ec) {
    if (ec) return;
    {
      MutexLock lock(&mu_);
      auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.info.socket_bound) return;
    }
    Close(id, absl::StrCat("its session socket did not say hello within ",
                           absl::ToInt64Milliseconds(limits_.socket_timeout),
                           " ms (sessions.socket_timeout_ms)"));
  });
}

absl::StatusOr<SessionManager::Session*> SessionManager::Authorized(uint64_t id,
                                                                    absl::string_view token) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat("no session ", id, " (closed already?)"));
  }
  if (!ConstantTimeEqual(it->second.token, token)) {
    return absl::PermissionDeniedError(absl::StrCat("wrong token for session ", id));
  }
  return &it->second;
}

absl::Status SessionManager::Detach(uint64_t id, absl::string_view token) {
  {
    MutexLock lock(&mu_);
    if (auto session = Authorized(id, token); !session.ok()) return session.status();
  }
  Close(id, "detached");
  return absl::OkStatus();
}

absl::Status SessionManager::ReportCalls(uint64_t id, absl::string_view token,
                                         std::vector<CallReport> calls) {
  if (calls.size() > kMaxCallReports) {
    return absl::InvalidArgumentError(absl::StrCat("a call report has at most ", kMaxCallReports,
                                                   " entries; this one has ", calls.size()));
  }
  for (const CallReport& c : calls) {
    if (c.endpoint.size() > 128 || c.method.size() > 128) {
      return absl::InvalidArgumentError("a call report names an endpoint or method over 128 bytes");
    }
    if (c.latency_below_pow2_us.size() > kMaxLatencyBuckets ||
        !std::is_sorted(c.latency_below_pow2_us.begin(), c.latency_below_pow2_us.end())) {
      return absl::InvalidArgumentError(
          absl::StrCat("a call report's latency histogram has at most ", kMaxLatencyBuckets,
                       " cumulative (never decreasing) counts"));
    }
  }
  MutexLock lock(&mu_);
  auto session = Authorized(id, token);
  if (!session.ok()) return session.status();
  // Each report speaks for the endpoints it names (one per Server).
  std::vector<CallReport>& kept = (*session)->info.calls;
  std::erase_if(kept, [&](const CallReport& old) {
    return std::any_of(calls.begin(), calls.end(),
                       [&](const CallReport& c) { return c.endpoint == old.endpoint; });
  });
  if (kept.size() + calls.size() > kMaxCallReports) {
    return absl::ResourceExhaustedError(absl::StrCat("the session reports calls for more than ",
                                                     kMaxCallReports, " endpoint methods"));
  }
  kept.insert(kept.end(), std::make_move_iterator(calls.begin()),
              std::make_move_iterator(calls.end()));
  return absl::OkStatus();
}

absl::Status SessionManager::BindEndpoint(uint64_t id, absl::string_view token,
                                          const std::string& name) {
  bool valid = !name.empty() && name.size() <= 63;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      valid = false;
    }
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint name '", name, "' must be 1 to 63 letters, digits, '.', '_' or '-'"));
  }
  MutexLock lock(&mu_);
  auto session = Authorized(id, token);
  if (!session.ok()) return session.status();
  if (auto it = endpoints_.find(name); it != endpoints_.end()) {
    return absl::AlreadyExistsError(absl::StrCat(
        "endpoint '", name, "' is already bound on this node (session ", it->second, ")"));
  }
  if ((*session)->info.endpoints.size() >= limits_.max_endpoints) {
    return Refused("sessions.max_endpoints", absl::ResourceExhaustedError(absl::StrCat(
                                                 "the session has ", limits_.max_endpoints,
                                                 " endpoints bound (sessions.max_endpoints)")));
  }
  endpoints_[name] = id;
  endpoint_generation_.fetch_add(1, std::memory_order_release);
  (*session)->info.endpoints.push_back(name);
  return absl::OkStatus();
}

absl::Status SessionManager::UnbindEndpoint(uint64_t id, absl::string_view token,
                                            const std::string& name) {
  MutexLock lock(&mu_);
  auto session = Authorized(id, token);
  if (!session.ok()) return session.status();
  auto it = endpoints_.find(name);
  if (it == endpoints_.end() || it->second != id) {
    return absl::NotFoundError(absl::StrCat("session ", id, " has no endpoint '", name, "'"));
  }
  endpoints_.erase(it);
  endpoint_generation_.fetch_add(1, std::memory_order_release);
  auto& names = (*session)->info.endpoints;
  names.erase(std::remove(names.begin(), names.end(), name), names.end());
  return absl::OkStatus();
}

std::optional<uint64_t> SessionManager::EndpointOwner(const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = endpoints_.find(name);
  if (it == endpoints_.end()) return std::nullopt;
  return it->second;
}

absl::Status SessionManager::BindSocket(uint64_t id, absl::string_view token,
                                        const PeerCredentials& caller) {
  MutexLock lock(&mu_);
  auto authorized = Authorized(id, token);
  if (!authorized.ok()) return authorized.status();
  Session& session = **authorized;
  if (caller.uid != session.info.creds.uid) {
    return absl::PermissionDeniedError(absl::StrCat("session ", id, " belongs to uid ",
                                                    session.info.creds.uid, ", not ", caller.uid));
  }
  if (session.info.socket_bound) {
    return absl::AlreadyExistsError(absl::StrCat("session ", id, " already has a session socket"));
  }
  session.info.socket_bound = true;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SessionManager::RegisterHost(uint64_t id, UniqueFd memfd, uint64_t length,
                                                      uint64_t wanted) {
  // A bad region is INVALID_ARGUMENT whatever the session's limits.
  if (auto st = HostRegion::Check(memfd.get(), length); !st.ok()) return st;
  return Register(id, length, wanted, [&]() -> absl::StatusOr<std::shared_ptr<Region>> {
    auto region = HostRegion::Map(std::move(memfd), length);
    if (!region.ok()) return region.status();
    return std::shared_ptr<Region>(*std::move(region));
  });
}

absl::StatusOr<uint64_t> SessionManager::RegisterCuda(uint64_t id, const CudaRequest& request,
                                                      UniqueFd vmm_fd) {
  return Register(
      id, request.length, request.wanted, [&]() -> absl::StatusOr<std::shared_ptr<Region>> {
        if (vmm_fd.valid()) {
          return cuda_.ImportFd(request.device, std::move(vmm_fd), request.size, request.offset,
                                request.length);
        }
        return cuda_.OpenIpc(request.device, request.handle, request.offset, request.length);
      });
}

absl::StatusOr<uint64_t> SessionManager::Register(
    uint64_t id, uint64_t length, uint64_t wanted,
    absl::FunctionRef<absl::StatusOr<std::shared_ptr<Region>>()> make) {
  const auto taken = [wanted](const Session& session) -> absl::Status {
    if (wanted == 0 || !session.regions.contains(wanted)) return absl::OkStatus();
    return absl::AlreadyExistsError(
        absl::StrCat("the session already has a region ", wanted, "; unregister it first"));
  };
  {
    // Check the limits before mapping anything.
    MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return absl::NotFoundError(absl::StrCat("no session ", id));
    const Session& session = it->second;
    if (session.regions.size() >= limits_.max_regions) {
      return Refused("sessions.max_regions",
                     absl::ResourceExhaustedError(
                         absl::StrCat("session ", id, " has ", session.regions.size(),
                                      " regions registered, the limit (sessions.max_regions)")));
    }
    if (length > limits_.max_registered_bytes - session.info.registered_bytes) {
      return Refused(
          "sessions.max_registered_bytes",
          absl::ResourceExhaustedError(absl::StrCat(
              "registering ", length, " bytes would take session ", id, " past its limit of ",
              limits_.max_registered_bytes, " (sessions.max_registered_bytes; ",
              session.info.registered_bytes, " registered)")));
    }
  }
  auto region = make();
  if (!region.ok()) return region.status();
  std::shared_ptr<Region> doomed;  // released outside the lock if the session is gone
  MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    doomed = *std::move(region);
    return absl::NotFoundError(absl::StrCat("session ", id, " closed while registering"));
  }
  Session& session = it->second;
  if (auto st = taken(session); !st.ok()) {  // asked for twice at once
    doomed = *std::move(region);
    return st;
  }
  uint64_t region_id = wanted;
  if (region_id == 0) {
    while (session.regions.contains(session.next_region)) ++session.next_region;
    region_id = session.next_region++;
  }
  session.info.registered_bytes += length;
  session.info.regions++;
  if ((*region)->on_gpu()) session.info.gpu_regions++;
  session.regions[region_id] = *std::move(region);
  return region_id;
}

absl::Status SessionManager::Unregister(uint64_t id, uint64_t region_id) {
  // Windows over the region first: once this returns the client may free
  // the memory, so nothing may write into it any more.
  if (windows_ != nullptr) {
    if (auto st = windows_->RevokeRegion(id, region_id, kRevokeWait); !st.ok()) return st;
  }
  std::shared_ptr<Region> released;  // unmapped outside the lock
  MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return absl::NotFoundError(absl::StrCat("no session ", id));
  Session& session = it->second;
  auto region = session.regions.find(region_id);
  if (region == session.regions.end()) {
    return absl::InvalidArgumentError(absl::StrCat("session ", id, " has no region ", region_id));
  }
  session.info.registered_bytes -= region->second->length();
  session.info.regions--;
  if (region->second->on_gpu()) session.info.gpu_regions--;
  released = std::move(region->second);
  session.regions.erase(region);
  region_generation_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void SessionManager::SetShards(size_t shards) {
  MutexLock lock(&mu_);
  placement_ = ShardPlacement(shards);
}

bool SessionManager::Close(uint64_t id, absl::string_view why) {
  std::shared_ptr<asio::posix::stream_descriptor> watch;
  Session closed;  // its regions are unmapped when this goes, outside the lock
  {
    MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return false;
    watch = std::move(it->second.pid_watch);
    closed = std::move(it->second);
    sessions_.erase(it);
    placement_.Remove(id, closed.info.placement);
    for (const std::string& name : closed.info.endpoints) endpoints_.erase(name);
    endpoint_generation_.fetch_add(1, std::memory_order_release);
    region_generation_.fetch_add(1, std::memory_order_release);
  }
  closed_total_.fetch_add(1, std::memory_order_relaxed);
  if (windows_ != nullptr) (void)windows_->RevokeSession(id, kRevokeWait);  // logs a hold-out
  if (close_observer_) close_observer_(id);
  spdlog::info("session {} closed: {}; released {} region(s), {} bytes", id, why,
               closed.regions.size(), closed.info.registered_bytes);
  if (watch) {
    asio::post(io_, [watch] {
      std::error_code ignored;
      watch->close(ignored);
    });
  }
  return true;
}

absl::Status SessionManager::CheckToken(uint64_t id, absl::string_view token) {
  MutexLock lock(&mu_);
  return Authorized(id, token).status();
}

std::vector<SessionSnapshot> SessionManager::List() const {
  MutexLock lock(&mu_);
  std::vector<SessionSnapshot> out;
  out.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) {
    out.push_back(session.info);
    out.back().shard = static_cast<uint32_t>(id % placement_.shards());
  }
  return out;
}

std::shared_ptr<Region> SessionManager::FindRegion(uint64_t id, uint64_t region) const {
  MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  auto r = it->second.regions.find(region);
  return r == it->second.regions.end() ? nullptr : r->second;
}

bool SessionManager::IsOpen(uint64_t id) const {
  MutexLock lock(&mu_);
  return sessions_.count(id) != 0;
}

size_t SessionManager::active() const {
  MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace axon::daemon
