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
    : state_(std::make_shared<State>(State{.session = std::move(session),
                                           .options = std::move(options),
                                           .stop = UniqueFd(::eventfd(0, EFD_CLOEXEC))})) {
  Options& o = state_->options;
  o.initial_ms = std::max(o.initial_ms, 1);
  o.max_ms = std::max(o.max_ms, o.initial_ms);
  thread_ = std::thread([state = state_] { state->Run(); });
}

Reconnector::~Reconnector() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(state_->stop.get(), &one, sizeof(one));
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // on_connection closed the client: Run ends once it returns
  } else {
    thread_.join();
  }
  Session& session = *state_->session;
  std::lock_guard<AdaptiveMutex> lock(session.ring_mu);
  session.reconnecting = false;  // what waits for it waits no more
  if (session.daemon_gone) {
    session.detached = true;
    session.FailKept();  // nobody will post them again
  }
  session.drained.notify_all();
}

bool Reconnector::State::WaitForHangUp() {
  while (true) {
    // Only this thread replaces the socket once the client is up.
    const int fd = session->hangup_fd.load();
    pollfd pfds[2] = {{stop.get(), POLLIN, 0}, {fd, POLLRDHUP, 0}};
    if (::poll(pfds, fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) return false;
    if (pfds[0].revents != 0) return false;
    if (pfds[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  }
}

bool Reconnector::State::Sleep(int ms) {
  pollfd pfd{stop.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, ms);
  } while (ready < 0 && errno == EINTR);
  return ready == 0;
}

void Reconnector::State::Notify(const ConnectionEvent& event) {
  if (options.notify) options.notify(event);
}

void Reconnector::State::Run() {
  while (WaitForHangUp()) {
    const absl::Time lost = absl::Now();
    {
      std::lock_guard<AdaptiveMutex> lock(session->ring_mu);
      // Completions already on the ring are real: taken before the rest fail.
      (void)session->DrainCompletions();
      session->DaemonGone();
    }
    spdlog::warn("axon: axond went away; reconnecting");
    Notify({.connected = false, .status = session->GoneStatus()});
    int wait_ms = options.initial_ms;
    for (int attempt = 1;; ++attempt) {
      if (!Sleep(wait_ms)) return;
      const absl::Status st = session->Reattach();
      if (!session->daemon_gone) {
        spdlog::info("axon: re-attached to axond after {} ms and {} attempt(s)",
                     absl::ToInt64Milliseconds(absl::Now() - lost), attempt);
        if (!st.ok()) spdlog::warn("axon: {}", st.message());
        Notify({.connected = true,
                .status = st,
                .attempts = attempt,
                .session_id = session->Credentials().first});
        break;
      }
      spdlog::debug("axon: re-attach attempt {}: {}", attempt, st.message());
      wait_ms = std::min(wait_ms * 2, options.max_ms);
    }
  }
}

}  // namespace axon::internal
