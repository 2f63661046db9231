#include "client/lib/reconnector.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/time/clock.h"
#include "client/lib/session.h"
#include "common/log.h"

namespace axon::internal {

Reconnector::Reconnector(std::shared_ptr<Session> session, Options options)
    : session_(std::move(session)),
      options_(std::move(options)),
      stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  options_.initial_ms = std::max(options_.initial_ms, 1);
  options_.max_ms = std::max(options_.max_ms, options_.initial_ms);
  thread_ = std::thread([this] { Run(); });
}

Reconnector::~Reconnector() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_.get(), &one, sizeof(one));
  thread_.join();
  std::lock_guard<std::mutex> lock(session_->ring_mu);
  session_->reconnecting = false;  // what waits for it waits no more
  if (session_->daemon_gone) {
    session_->detached = true;
    session_->kept.clear();  // the client fails their callbacks as it goes
  }
  session_->drained.notify_all();
}

bool Reconnector::WaitForHangUp() {
  while (true) {
    // Only this thread replaces the socket once the client is up.
    const int fd = session_->hangup_fd.load();
    pollfd pfds[2] = {{stop_.get(), POLLIN, 0}, {fd, POLLRDHUP, 0}};
    if (::poll(pfds, fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) return false;
    if (pfds[0].revents != 0) return false;
    if (pfds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  }
}

bool Reconnector::Sleep(int ms) {
  pollfd pfd{stop_.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, ms);
  } while (ready < 0 && errno == EINTR);
  return ready == 0;
}

void Reconnector::Notify(const ConnectionEvent& event) {
  if (options_.notify) options_.notify(event);
}

void Reconnector::Run() {
  while (WaitForHangUp()) {
    const absl::Time lost = absl::Now();
    {
      std::lock_guard<std::mutex> lock(session_->ring_mu);
      // Completions already on the ring are real: taken before the rest fail.
      (void)session_->DrainCompletions();
      session_->DaemonGone();
    }
    spdlog::warn("axon: axond went away; reconnecting");
    Notify({.connected = false, .status = session_->GoneStatus()});
    int wait_ms = options_.initial_ms;
    for (int attempt = 1;; ++attempt) {
      if (!Sleep(wait_ms)) return;
      const absl::Status st = session_->Reattach();
      if (!session_->daemon_gone) {
        spdlog::info("axon: re-attached to axond after {} ms and {} attempt(s)",
                     absl::ToInt64Milliseconds(absl::Now() - lost), attempt);
        if (!st.ok()) spdlog::warn("axon: {}", st.message());
        Notify({.connected = true,
                .status = st,
                .attempts = attempt,
                .session_id = session_->Credentials().first});
        break;
      }
      spdlog::debug("axon: re-attach attempt {}: {}", attempt, st.message());
      wait_ms = std::min(wait_ms * 2, options_.max_ms);
    }
  }
}

}  // namespace axon::internal
