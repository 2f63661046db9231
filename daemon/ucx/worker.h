// ucx::Worker owns one ucp_worker_h, created in single-thread mode: only the
// UCX thread (ucx::Loop) may touch it. It also receives active messages and
// runs every callback UCX raises *after* ucp_worker_progress returns, so that
// handlers may send, connect and close freely.
#pragma once

#include <ucp/api/ucp.h>

#include <functional>
#include <map>
#include <memory>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "common/small_bytes.h"
#include "daemon/ucx/am_data.h"
#include "daemon/ucx/context.h"
#include "daemon/ucx/ids.h"
#include "daemon/ucx/memory_kind.h"

namespace axon::ucx {

class Worker;

// The data of a rendezvous active message, still on the sender. Pull it with
// Worker::ReceiveData, into wherever it belongs; dropping it unreceived
// releases it. UCX thread only, and never outliving its Worker.
class PendingData {
 public:
  ~PendingData();
  PendingData(const PendingData&) = delete;
  PendingData& operator=(const PendingData&) = delete;
  size_t length() const { return length_; }

 private:
  friend class Worker;
  PendingData(Worker& worker, void* descriptor, size_t length)
      : worker_(worker), descriptor_(descriptor), length_(length) {}
  Worker& worker_;
  void* descriptor_;  // null once handed to ucp_am_recv_data_nbx
  size_t length_;
};

// The bytes of a received header. A data frame's header (about 100 bytes
// with its names) stays inline: no allocation per message for it.
using AmHeader = SmallBytes<192>;

// One received active message. Eager: `data` holds the bytes. Rendezvous:
// `pending` is set and the bytes are still on the sender.
struct AmMessage {
  EndpointId from = EndpointId::kNone;  // the endpoint it came over (sender sets the reply flag)
  AmHeader header;
  AmData data;
  std::unique_ptr<PendingData> pending;

  size_t data_length() const { return pending ? pending->length() : data.size(); }
};

class Worker {
 public:
  // Gets the message in place; it may take its data or pending data.
  using AmHandler = std::function<void(AmMessage& message)>;

  static absl::StatusOr<std::unique_ptr<Worker>> Create(const Context& context);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  ucp_worker_h handle() const { return handle_; }
  const Context& context() const { return context_; }
  // The fd that becomes readable when the worker has events, once armed.
  int event_fd() const { return event_fd_; }

  // Progresses communication, then runs deferred callbacks; returns whether
  // anything happened. Called from a handler or deferred callback, it
  // progresses only: what it receives runs after the current batch.
  bool Progress();
  // Arms the event fd. Returns false when events are pending (progress again
  // instead of sleeping).
  absl::StatusOr<bool> Arm();

  // Delivers active messages with `id` (eager or rendezvous) to `handler`.
  absl::Status SetAmHandler(uint16_t id, AmHandler handler);
  // Stops delivering messages with `id`, also those already received.
  void RemoveAmHandler(uint16_t id);
  // This worker's address, for a peer to connect to (Endpoint::ConnectToWorker).
  absl::StatusOr<std::vector<uint8_t>> Address() const;
  // Pulls a rendezvous message's bytes into [into, into + data->length()),
  // which the caller keeps valid until `done` runs (on the UCX thread). The
  // worker that received the message does it.
  static void ReceiveData(std::unique_ptr<PendingData> data, void* into,
                          std::function<void(const absl::Status&)> done,
                          MemoryKind memory = MemoryKind::kHost);
  // Runs `fn` after the current ucp_worker_progress call returns.
  void Defer(absl::AnyInvocable<void()> fn) { deferred_.emplace_back(std::move(fn)); }
  // Frees `request` (from a *_nbx call) once it completes.
  void TrackRequest(ucs_status_ptr_t request);
  // The endpoint `id` is going: messages it brought that wait for their
  // handlers now come from nobody (EndpointId::kNone). UCX may give the
  // next endpoint the same address, which would make them its messages.
  void ForgetEndpoint(EndpointId id);
  // Messages received and waiting for their handlers.
  size_t arrivals_waiting() const;

 private:
  friend class PendingData;
  struct AmRegistration {  // the arg UCX passes back; map nodes keep it stable
    Worker* worker;
    uint16_t id;
    AmHandler handler;
  };
  Worker(const Context& context, ucp_worker_h handle, int event_fd)
      : context_(context), handle_(handle), event_fd_(event_fd) {}
  static ucs_status_t OnAm(void* arg, const void* header, size_t header_length, void* data,
                           size_t length, const ucp_am_recv_param_t* param);
  bool RunDeferred();
  void FreeCompletedRequests();

  const Context& context_;
  ucp_worker_h handle_;
  int event_fd_;
  std::map<uint16_t, AmRegistration> am_handlers_;
  // A received message waiting for its handler: kept as it is rather than
  // in a closure, which would not fit AnyInvocable's inline storage (one
  // allocation per message fewer).
  struct Arrival {
    explicit Arrival(uint16_t id) : id(id) {}
    uint16_t id;
    AmMessage message;
  };
  using Deferred = std::variant<absl::AnyInvocable<void()>, Arrival>;
  // In order. RunDeferred swaps the queue with `running_` (empty, and kept
  // with its capacity) and runs that batch: no allocation per entry, and a
  // handler may defer more meanwhile.
  std::vector<Deferred> deferred_;
  std::vector<Deferred> running_;
  bool running_deferred_ = false;
  std::vector<void*> tracked_;  // requests to free on completion
};

}  // namespace axon::ucx
