#include "daemon/systemd/notifier.h"

#include <systemd/sd-daemon.h>

#include <string>

#include "common/log.h"

namespace axon::daemon {

SystemdNotifier::SystemdNotifier() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0 && usec > 0) {
    watchdog_ = std::chrono::microseconds(usec);
  }
}

void SystemdNotifier::Notify(const char* message) {
  const int rc = sd_notify(/*unset_environment=*/0, message);
  if (rc < 0) spdlog::warn("sd_notify({}) failed: {}", message, rc);
}

void SystemdNotifier::Ready(absl::string_view status_line) {
  const std::string message = "READY=1\nSTATUS=" + std::string(status_line);
  Notify(message.c_str());
}

void SystemdNotifier::Reloading() { Notify("RELOADING=1"); }
void SystemdNotifier::Stopping() { Notify("STOPPING=1"); }
void SystemdNotifier::Watchdog() { Notify("WATCHDOG=1"); }

}  // namespace axon::daemon
