#include "daemon/window/window_table.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/secrets.h"
#include "common/wire/ring_ops.h"
#include "spdlog/spdlog.h"

namespace axon::daemon {

struct WindowTable::Window {
  WindowInfo info;  // holds and counts guarded by Core::mu
  wire::Capability capability{};
  std::shared_ptr<Region> region;
  bool revoked = false;
};

struct WindowTable::Core {
  Mutex mu;
  std::condition_variable_any released;  // a hold went
  std::map<uint64_t, std::shared_ptr<Window>> windows ABSL_GUARDED_BY(mu);
  uint64_t next = 1 ABSL_GUARDED_BY(mu);  // the low 32 bits of the next id
};

namespace {

uint64_t RandomRun() {
  uint32_t run = 0;
  while (run == 0) {
    if (!FillRandom({reinterpret_cast<uint8_t*>(&run), sizeof(run)}).ok()) run = 1;
  }
  return uint64_t{run} << 32;
}

// Whether `address` ("node" or "node/endpoint") admits `endpoint` of `node`.
bool Admits(absl::string_view address, absl::string_view node, absl::string_view endpoint) {
  const size_t slash = address.find('/');
  if (slash == absl::string_view::npos) return address == node;
  return address.substr(0, slash) == node && address.substr(slash + 1) == endpoint;
}

absl::Status CheckAllowed(const std::vector<std::string>& allowed) {
  if (allowed.size() > kMaxWindowAllowed) {
    return absl::InvalidArgumentError(absl::StrCat("an access list has at most ", kMaxWindowAllowed,
                                                   " entries, not ", allowed.size()));
  }
  for (const std::string& a : allowed) {
    const size_t slash = a.find('/');
    const bool ok = !a.empty() && a.size() <= wire::kAddressSize - 1 && a.front() != '/' &&
                    (slash == std::string::npos ||
                     (slash + 1 < a.size() && a.find('/', slash + 1) == std::string::npos));
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("access list entry '", a, "' is neither 'node' nor 'node/endpoint'"));
    }
  }
  return absl::OkStatus();
}

const char* AccessName(uint8_t access) {
  return access == wire::kWindowRead ? "read" : access == wire::kWindowWrite ? "write" : "use";
}

}  // namespace

WindowTable::WindowTable(std::string node_name, uint64_t max_per_session)
    : node_name_(std::move(node_name)),
      max_per_session_(max_per_session),
      run_(RandomRun()),
      core_(std::make_shared<Core>()) {}

WindowTable::~WindowTable() = default;

absl::StatusOr<wire::WindowDescriptor> WindowTable::Expose(ExposeRequest request) {
  if (request.region == nullptr) return absl::NotFoundError("no such region in the session");
  if (request.length == 0) return absl::InvalidArgumentError("a window has at least one byte");
  if (request.offset > request.region->length() ||
      request.length > request.region->length() - request.offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("window [", request.offset, ", +", request.length, ") is outside region ",
                     request.region_id, " (", request.region->length(), " bytes)"));
  }
  if (request.access == 0 || (request.access & ~(wire::kWindowRead | wire::kWindowWrite)) != 0) {
    return absl::InvalidArgumentError("a window allows reads, writes, or both");
  }
  if (auto st = CheckAllowed(request.allowed); !st.ok()) return st;
  wire::Capability capability;
  if (auto st = FillRandom(absl::MakeSpan(capability)); !st.ok()) return st;

  auto window = std::make_shared<Window>();
  window->capability = capability;
  window->region = std::move(request.region);
  window->info = {.session = request.session,
                  .region_id = request.region_id,
                  .offset = request.offset,
                  .length = request.length,
                  .notify_endpoint = std::move(request.notify_endpoint),
                  .allowed = std::move(request.allowed),
                  .access = request.access};
  MutexLock lock(&core_->mu);
  const uint64_t held =
      std::count_if(core_->windows.begin(), core_->windows.end(),
                    [&](const auto& w) { return w.second->info.session == request.session; });
  if (held >= max_per_session_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the session has ", held, " windows exposed, its limit (sessions.max_windows)"));
  }
  if (core_->next > 0xffffffff) {
    return absl::ResourceExhaustedError("this run of axond exposed 2^32 windows; restart it");
  }
  window->info.id = run_ | core_->next++;
  core_->windows[window->info.id] = window;
  return wire::WindowDescriptor{.node = node_name_,
                                .id = window->info.id,
                                .length = window->info.length,
                                .capability = capability,
                                .access = window->info.access};
}

WindowTable::Grant::Grant(std::shared_ptr<Core> core, std::shared_ptr<Window> window,
                          uint8_t access, bool remote)
    : core_(std::move(core)),
      window_(std::move(window)),
      region_(window_->region),
      offset_(window_->info.offset),
      length_(window_->info.length),
      id_(window_->info.id),
      owner_(window_->info.session),
      notify_endpoint_(window_->info.notify_endpoint),
      access_(access),
      remote_(remote) {}

WindowTable::Grant::~Grant() {
  MutexLock lock(&core_->mu);
  WindowInfo& info = window_->info;
  --info.holds;
  if (access_ == wire::kWindowWrite) {
    ++info.writes;
    info.bytes_written += moved_;
  } else {
    ++info.reads;
    info.bytes_read += moved_;
  }
  ++(remote_ ? info.remote_ops : info.local_ops);
  (remote_ ? info.remote_bytes : info.local_bytes) += moved_;
  if (rma_) {
    ++info.rma_ops;
    info.rma_bytes += moved_;
  }
  core_->released.notify_all();
}

absl::Status WindowTable::Grant::CheckNotifies() const {
  if (!notify_endpoint_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("window ", id_, " takes no notifications (exposed without a notify endpoint)"));
}

absl::Status CheckWindowBounds(uint64_t id, uint64_t window_length, uint64_t offset,
                               uint64_t length) {
  // Two messages for one code: a wrong offset and a wrong length are
  // different mistakes to look for.
  if (offset >= window_length && !(offset == window_length && length == 0)) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is outside window ", id, " (", window_length, " bytes)"));
  }
  if (length > window_length - offset) {
    return absl::OutOfRangeError(absl::StrCat(length, " bytes from offset ", offset,
                                              " run past the end of window ", id, " (",
                                              window_length, " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<WindowTable::Grant>> WindowTable::Acquire(
    uint64_t id, const wire::Capability& capability, absl::string_view node,
    absl::string_view endpoint, uint8_t access) {
  MutexLock lock(&core_->mu);
  auto it = core_->windows.find(id);
  if (it == core_->windows.end()) {
    if ((id & ~uint64_t{0xffffffff}) != run_) {
      return absl::FailedPreconditionError(
          absl::StrCat("window ", id, " is not from this run of axond on ", node_name_,
                       ": revoked when it restarted, or never exposed"));
    }
    if ((id & 0xffffffff) != 0 && (id & 0xffffffff) < core_->next) {
      return absl::FailedPreconditionError(absl::StrCat(
          "window ", id, " on ", node_name_, " was revoked (unexposed, or its owner went away)"));
    }
    return absl::NotFoundError(absl::StrCat("no window ", id, " on ", node_name_));
  }
  Window& window = *it->second;
  if (!ConstantTimeEqual(capability, window.capability)) {
    return absl::UnauthenticatedError(absl::StrCat("wrong capability for window ", id, " on ",
                                                   node_name_, ": use its descriptor"));
  }
  if ((window.info.access & access) == 0) {
    return absl::PermissionDeniedError(absl::StrCat("window ", id, " on ", node_name_,
                                                    " does not allow ", AccessName(access), "s"));
  }
  const auto& allowed = window.info.allowed;
  if (!allowed.empty() && std::none_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
        return Admits(a, node, endpoint);
      })) {
    return absl::PermissionDeniedError(absl::StrCat(node, "/", endpoint, " may not ",
                                                    AccessName(access), " window ", id, " on ",
                                                    node_name_, " (not on its access list)"));
  }
  ++window.info.holds;
  return std::shared_ptr<Grant>(new Grant(core_, it->second, access, node != node_name_));
}

template <typename Match>
absl::Status WindowTable::Revoke(Match match, absl::Duration wait, absl::string_view why) {
  std::vector<std::shared_ptr<Window>> revoked;
  MutexLock lock(&core_->mu);
  for (auto it = core_->windows.begin(); it != core_->windows.end();) {
    if (match(it->second->info)) {
      it->second->revoked = true;
      revoked.push_back(std::move(it->second));
      it = core_->windows.erase(it);
    } else {
      ++it;
    }
  }
  auto held = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_->mu) {
    return std::any_of(revoked.begin(), revoked.end(),
                       [](const auto& w) { return w->info.holds != 0; });
  };
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(wait);
  while (held()) {
    if (core_->released.wait_until(core_->mu, deadline) == std::cv_status::timeout && held()) {
      std::vector<uint64_t> ids;
      for (const auto& w : revoked) {
        if (w->info.holds != 0) ids.push_back(w->info.id);
      }
      spdlog::warn("windows: {} still in use {} after revocation ({})", absl::StrJoin(ids, ", "),
                   absl::FormatDuration(wait), std::string(why));
      return absl::DeadlineExceededError(absl::StrCat(
          "window ", absl::StrJoin(ids, ", "), " revoked, but operations still used it ",
          absl::FormatDuration(wait), " later: do not free its memory yet"));
    }
  }
  return absl::OkStatus();
}

absl::Status WindowTable::Unexpose(uint64_t session, uint64_t id, absl::Duration wait) {
  {
    MutexLock lock(&core_->mu);
    auto it = core_->windows.find(id);
    if (it == core_->windows.end() || it->second->info.session != session) {
      return absl::NotFoundError(absl::StrCat("the session has no window ", id, " exposed"));
    }
  }
  return Revoke([&](const WindowInfo& w) { return w.id == id; }, wait, "unexposed");
}

absl::Status WindowTable::RevokeRegion(uint64_t session, uint64_t region_id, absl::Duration wait) {
  return Revoke(
      [&](const WindowInfo& w) { return w.session == session && w.region_id == region_id; }, wait,
      "its region was unregistered");
}

absl::Status WindowTable::RevokeSession(uint64_t session, absl::Duration wait) {
  return Revoke([&](const WindowInfo& w) { return w.session == session; }, wait,
                "its session closed");
}

std::vector<WindowInfo> WindowTable::List() const {
  MutexLock lock(&core_->mu);
  std::vector<WindowInfo> out;
  out.reserve(core_->windows.size());
  for (const auto& [id, w] : core_->windows) out.push_back(w->info);
  return out;
}

size_t WindowTable::size() const {
  MutexLock lock(&core_->mu);
  return core_->windows.size();
}

}  // namespace axon::daemon
