// The thread that notices a client's daemon going away and re-attaches the
// session once the daemon is back (ClientOptions::reconnect). Internal.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include "axon/client.h"
#include "common/unique_fd.h"

namespace axon::internal {

struct Session;

class Reconnector {
 public:
  struct Options {
    int initial_ms = 50;  // the wait before the first attempt, doubled after each failure
    int max_ms = 1000;
    std::function<void(const ConnectionEvent&)> notify;
  };
  // Starts watching `session`'s socket.
  Reconnector(std::shared_ptr<Session> session, Options options);
  // Stops, waiting for an attempt under way (unless called from `notify`
  // itself, whose thread then ends on its own).
  ~Reconnector();
  Reconnector(const Reconnector&) = delete;
  Reconnector& operator=(const Reconnector&) = delete;

 private:
  // What the thread uses, shared with it: it may outlive the Reconnector.
  struct State {
    std::shared_ptr<Session> session;
    Options options;
    UniqueFd stop;  // an eventfd: written to stop
    void Run();
    // Waits until the session's socket hangs up; false when stopped first.
    bool WaitForHangUp();
    // Waits `ms`; false when stopped meanwhile.
    bool Sleep(int ms);
    void Notify(const ConnectionEvent& event);
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace axon::internal
