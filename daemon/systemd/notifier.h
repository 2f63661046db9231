// Talks to systemd's service manager (Type=notify): READY=1, STOPPING=1,
// RELOADING=1 and the watchdog. Outside systemd (no NOTIFY_SOCKET) every call
// does nothing.
#pragma once

#include <chrono>
#include <optional>

#include "absl/strings/string_view.h"

namespace axon::daemon {

class SystemdNotifier {
 public:
  SystemdNotifier();

  void Ready(absl::string_view status_line);
  void Reloading();
  void Stopping();
  void Watchdog();

  // WatchdogSec= as configured for this service, if any.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

 private:
  void Notify(const char* message);
  std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace axon::daemon
