// ucx::Worker owns one ucp_worker_h, created in single-thread mode: only the
// UCX thread (UcxLoop) may touch it.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "daemon/ucx/context.h"

namespace axon::ucx {

class Worker {
 public:
  static absl::StatusOr<std::unique_ptr<Worker>> Create(const Context& context);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  ucp_worker_h handle() const { return handle_; }
  // The fd that becomes readable when the worker has events, once armed.
  int event_fd() const { return event_fd_; }

  // Progresses communication; returns whether anything happened.
  bool Progress();
  // Arms the event fd. Returns false when events are pending (progress again
  // instead of sleeping).
  absl::StatusOr<bool> Arm();

 private:
  Worker(ucp_worker_h handle, int event_fd) : handle_(handle), event_fd_(event_fd) {}

  ucp_worker_h handle_;
  int event_fd_;
};

}  // namespace axon::ucx
