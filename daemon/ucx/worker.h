// ucx::Worker owns one ucp_worker_h, created in single-thread mode: only the
// UCX thread (ucx::Loop) may touch it. It also receives active messages and
// runs every callback UCX raises *after* ucp_worker_progress returns, so that
// handlers may send, connect and close freely.
#pragma once

#include <ucp/api/ucp.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/ucx/context.h"

namespace axon::ucx {

// One received active message, its bytes owned.
struct AmMessage {
  ucp_ep_h reply_ep = nullptr;  // the endpoint it came over (sender sets the reply flag)
  std::vector<uint8_t> header;
  std::vector<uint8_t> data;
};

class Worker {
 public:
  using AmHandler = std::function<void(AmMessage message)>;

  static absl::StatusOr<std::unique_ptr<Worker>> Create(const Context& context);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  ucp_worker_h handle() const { return handle_; }
  // The fd that becomes readable when the worker has events, once armed.
  int event_fd() const { return event_fd_; }

  // Progresses communication, then runs deferred callbacks; returns whether
  // anything happened.
  bool Progress();
  // Arms the event fd. Returns false when events are pending (progress again
  // instead of sleeping).
  absl::StatusOr<bool> Arm();

  // Delivers active messages with `id` (eager or rendezvous) to `handler`.
  absl::Status SetAmHandler(uint16_t id, AmHandler handler);
  // Runs `fn` after the current ucp_worker_progress call returns.
  void Defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // Frees `request` (from a *_nbx call) once it completes.
  void TrackRequest(ucs_status_ptr_t request);

 private:
  struct RndvReceive;
  struct AmRegistration {  // the arg UCX passes back; map nodes keep it stable
    Worker* worker;
    uint16_t id;
    AmHandler handler;
  };
  Worker(ucp_worker_h handle, int event_fd) : handle_(handle), event_fd_(event_fd) {}
  static ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data,
                           size_t length, const ucp_am_recv_param_t* param);
  bool RunDeferred();
  void StartRndvReceives();
  void FreeCompletedRequests();

  ucp_worker_h handle_;
  int event_fd_;
  void Deliver(uint16_t id, AmMessage message);

  std::map<uint16_t, AmRegistration> am_handlers_;
  std::deque<std::function<void()>> deferred_;
  std::vector<RndvReceive*> rndv_pending_;  // descriptors to receive after progress
  std::vector<void*> tracked_;              // requests to free on completion
};

}  // namespace axon::ucx
