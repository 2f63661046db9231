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
  // Stops, waiting for an attempt under way.
  ~Reconnector();
  Reconnector(const Reconnector&) = delete;
  Reconnector& operator=(const Reconnector&) = delete;

 private:
  void Run();
  // Waits until the session's socket hangs up; false when stopped first.
  bool WaitForHangUp();
  // Waits `ms`; false when stopped meanwhile.
  bool Sleep(int ms);
  void Notify(const ConnectionEvent& event);

  std::shared_ptr<Session> session_;
  Options options_;
  UniqueFd stop_;  // an eventfd: written to stop
  std::thread thread_;
};

}  // namespace axon::internal
