// Calls between endpoints: a method invoked by name with a header of bytes
// and typed tensors, host or GPU, and its reply, many in flight at once both
// ways.
//
//   // serving "kv" (one Server per endpoint; its threads run the handlers)
//   axon::Server server(*client, "kv", {.concurrency = 16});
//   server.Handle("get", [&](const axon::Request& r) -> absl::StatusOr<axon::Reply> {
//     return axon::Reply{.header = "ok", .tensors = {r.tensors[0]}};   // echo, no copy
//   });
//   server.Start();
//
//   // calling it
//   axon::Caller caller(*client, "trainer-0");
//   auto call = caller.CallAsync("node-b/kv", "get", "key-7", {weights}, {.timeout_ms = 500});
//   call->Then([](absl::StatusOr<axon::Reply> reply) { ... });   // or Wait(), Future(), Cancel()
//   auto reply = caller.Call("node-b/kv", "get", "key-7", {weights});   // blocking
//
// How the bytes travel. A request is one message to the server's endpoint
// (tag kCallRequestTag): the call frame (common/wire/call.h: method, call
// id, deadline, header, one descriptor per tensor), followed by the small
// host tensors: those of at most 2 KiB right after the frame copied into the
// message's first block (cheaper than a part each), the others read in place
// by the daemon. It lands in a slot of the server's receive area, where the
// handler sees those tensors without a copy. GPU tensors, and host tensors
// past CallOptions::inline_bytes, go as messages of their own: the server
// reads the frame, takes memory for each from its pool (on the GPU the
// descriptor names, or host memory), and posts a receive for it that only
// this caller's message can match; the daemons write it there, GPU to GPU
// where both ends are on GPUs. The reply comes
// back the same way: small host tensors inside the reply message (within
// CallOptions::reply_room), the rest apart, into CallOptions::reply_into
// (the caller's own tensors, posted before the request left and written in
// place) or into pool blocks sized from the reply's descriptors.
//
// Completions (replies landing, requests arriving) run on the client's
// progress thread, which the first Caller or Server of a client starts
// (ClientOptions::progress_thread); Then callbacks and async handlers' first
// steps run there, so they must not block.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "axon/tensor.h"

namespace axon {

namespace internal {
struct CallState;
struct ServerCall;
class ServerCore;
}  // namespace internal

// What a handler returns and a caller receives.
struct Reply {
  std::string header;
  // Handlers: any tensors (Tensor says how each is read); they may be the
  // request's own tensors, sent back without a copy. Callers: where the
  // reply's tensors landed: in CallOptions::reply_into, or in pool memory
  // each Tensor keeps (`owner`) until its last copy is gone.
  std::vector<Tensor> tensors;
};

// What a handler sees. `method` and `header` stay valid until the handler's
// reply is sent (the handler returned, or an async handler's
// Responder::Send). The tensors stay valid while any copy of each Tensor
// lives (its `owner` holds the receive-area slot or pool block): a handler
// may keep them, though a kept slot is one fewer for new requests.
struct Request {
  absl::string_view method;
  std::string from;  // the caller's endpoint, "node/endpoint"
  absl::string_view header;
  // Where the tensors landed: the server's receive area (small host ones),
  // or pool memory on the host or on the GPU the caller's tensor was on.
  std::vector<Tensor> tensors;
  absl::Time deadline = absl::InfiniteFuture();  // the caller's
  uint64_t call_id = 0;
};

struct CallOptions {
  // The whole call: request, handler, reply. Both daemons enforce it; the
  // server skips a request whose caller gave up. 0: no deadline.
  uint32_t timeout_ms = 10000;
  // The reply's tensors land in these, in order, host or GPU: GPU tensors
  // and host tensors past inline_bytes are written in place by the daemon
  // (zero copy); smaller host ones travel inside the reply message and
  // libaxon copies them out (one copy of at most inline_bytes is cheaper
  // than a message of their own). Each must be large enough for its reply
  // tensor (RESOURCE_EXHAUSTED otherwise). At most kMaxReplyInto; tensors
  // past these land in pool memory. They must stay alive until the call
  // ends.
  static constexpr size_t kMaxReplyInto = 64;
  absl::Span<const Tensor> reply_into;
  // The reply's tensors may take at most this many bytes in all.
  uint64_t max_reply_bytes = uint64_t{1} << 32;
  // Room for the reply message itself: frame, header and small host tensors
  // (which travel inside it up to this size; larger ones go apart).
  uint32_t reply_room = 64 * 1024;
  // Host tensors up to this many bytes in all travel inside the request
  // message; the rest go as messages of their own. Also the size up to
  // which a host reply_into tensor is copied rather than written in place.
  uint32_t inline_bytes = 16 * 1024;
  // GPU tensors: the stream (a cudaStream_t) whose queued work writes the
  // request's tensors; libaxon waits for it before the daemon reads them.
  void* cuda_stream = nullptr;
};

// A call in flight. Copies share the call.
class PendingCall {
 public:
  // Blocks until the call ends (its deadline bounds the wait), driving the
  // client's completions if no other thread does.
  absl::StatusOr<Reply> Wait() const;
  // Waits up to `timeout_ms`; true once the call has ended.
  bool WaitFor(int timeout_ms) const;
  bool done() const;
  // Runs `done` once, when the call ends (at once, here, if it has): on the
  // thread that completed it.
  void Then(std::function<void(absl::StatusOr<Reply>)> done) const;
  std::future<absl::StatusOr<Reply>> Future() const;
  // Ends the call CANCELLED unless it ended first; what is still in flight
  // is withdrawn. A handler already running is not stopped: its reply is
  // dropped.
  void Cancel() const;
  uint64_t id() const;

 private:
  friend class Caller;
  explicit PendingCall(std::shared_ptr<internal::CallState> state) : state_(std::move(state)) {}
  std::shared_ptr<internal::CallState> state_;
};

// Calls from one endpoint this client bound. Thread-safe: any number of
// threads may call at once, thousands of calls in flight.
class Caller {
 public:
  Caller(Client& client, std::string endpoint);
  ~Caller();
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;

  // Calls `method` at endpoint `to` ("endpoint" here, "node/endpoint"
  // anywhere). Fails at once with INVALID_ARGUMENT for a bad method name
  // (1 to 128 bytes), a header over 64 KiB, more than 128 tensors or a bad
  // descriptor. The call then ends with the handler's reply or status, or
  // NOT_FOUND (no such endpoint or node), UNIMPLEMENTED (no such method),
  // DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED (a reply larger than
  // allowed), UNAVAILABLE (the server or its node went away).
  absl::StatusOr<PendingCall> CallAsync(const std::string& to, absl::string_view method,
                                        absl::string_view header, absl::Span<const Tensor> tensors,
                                        const CallOptions& options = {});
  absl::StatusOr<Reply> Call(const std::string& to, absl::string_view method,
                             absl::string_view header, absl::Span<const Tensor> tensors,
                             const CallOptions& options = {});
  const std::string& endpoint() const { return endpoint_; }

 private:
  Client& client_;
  std::string endpoint_;
};

// Completes an async handler's request, from any thread, once.
class Responder {
 public:
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  // A Responder dropped without Send answers INTERNAL, so no caller waits
  // for a reply that never comes.
  ~Responder();
  void Send(absl::StatusOr<Reply> reply);

 private:
  friend class internal::ServerCore;
  explicit Responder(std::shared_ptr<internal::ServerCall> call);
  std::shared_ptr<internal::ServerCall> call_;
};

struct ServerOptions {
  // Handlers running at once: the server's threads. A slow handler holds
  // one; the others go on.
  int concurrency = 8;
  // The receive area libaxon sets up for the client when it has none: slots
  // of `slot_bytes` (the largest request message: frame, header and inline
  // tensors), `slots` of them (requests waiting or being served; when all
  // are taken, callers wait: back-pressure).
  uint32_t slot_bytes = 128 * 1024;
  uint32_t slots = 256;
};

// Per method, what a server or caller saw (see Server::Stats).
struct MethodStats {
  std::string method;
  uint64_t calls = 0;   // ended, with any status
  uint64_t errors = 0;  // ended with a status other than OK
  uint64_t in_flight = 0;
  uint64_t dropped_replies = 0;  // replies whose caller had gone (servers)
  double p50_us = 0, p99_us = 0;
  // Entry k - 1: calls answered in under 2^k us (cumulative); and their sum.
  std::vector<uint64_t> latency_below_pow2_us;
  double latency_sum_us = 0;
};

// Serves calls to one endpoint this client bound.
class Server {
 public:
  using Handler = std::function<absl::StatusOr<Reply>(const Request&)>;
  using AsyncHandler = std::function<void(const Request&, Responder)>;

  Server(Client& client, std::string endpoint, ServerOptions options = {});
  // Stops (see Stop).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Handlers by method name; register before Start. A blocking handler's
  // return is the reply; an async one answers through its Responder,
  // whenever it likes.
  void Handle(const std::string& method, Handler handler);
  void HandleAsync(const std::string& method, AsyncHandler handler);
  // Starts serving: the receive area (if the client has none), the
  // threads, and the client's arrivals for the endpoint.
  absl::Status Start();
  // Stops taking requests; waits for running handlers; requests not yet
  // started are answered UNAVAILABLE.
  void Stop();
  std::vector<MethodStats> Stats() const;
  const std::string& endpoint() const { return endpoint_; }

 private:
  Client& client_;
  std::string endpoint_;
  std::shared_ptr<internal::ServerCore> core_;
  ServerOptions options_;
};

}  // namespace axon
