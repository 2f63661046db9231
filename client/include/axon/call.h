// Calls between endpoints, a thin layer on libaxon's messages: a request
// message to the server's endpoint (it lands in the server's receive area),
// and a reply message back to the caller's endpoint, matched by a call id
// used as the tag. Deadlines are the messages' deadlines.
//
//   // server: a receive area, a handler, and a loop
//   server->SetReceiveArea(area, 1 << 20);
//   axon::Server serve(*server, "kv");
//   serve.Handle("get", [&](const axon::Request& r) -> absl::StatusOr<axon::Reply> { ... });
//   while (running) serve.ServeOnce(1000);
//
//   // caller
//   axon::Caller caller(*client, "trainer-0");
//   auto reply = caller.Call("node-b/kv", "get", "key-7", {}, {.timeout_ms = 500});
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"

namespace axon {

// Host bytes that travel with a call or a reply.
struct Tensor {
  const void* data = nullptr;
  size_t size = 0;
};

// What a handler sees: views into the receive area, valid while it runs.
struct Request {
  std::string method;
  std::string from;  // the caller's endpoint address
  std::string header;
  std::vector<absl::Span<const uint8_t>> tensors;
};

struct Reply {
  std::string header;
  std::vector<std::vector<uint8_t>> tensors;
};

struct CallOptions {
  uint32_t timeout_ms = 10000;
  size_t max_reply_bytes = 1 << 20;  // a larger reply fails RESOURCE_EXHAUSTED
};

// Makes calls from one endpoint this client bound. Calls from one Caller
// run one at a time (it owns one staging buffer); use one Caller per thread.
class Caller {
 public:
  Caller(Client& client, std::string endpoint) : client_(client), endpoint_(std::move(endpoint)) {}
  // Calls `method` at endpoint `to`. The handler's error comes back as the
  // status; so do DEADLINE_EXCEEDED, NOT_FOUND (no such endpoint) and
  // UNIMPLEMENTED (no such method).
  absl::StatusOr<Reply> Call(const std::string& to, const std::string& method,
                             const std::string& header, absl::Span<const Tensor> tensors,
                             CallOptions options = {});

 private:
  absl::Status Reserve(size_t request_bytes, size_t reply_bytes);
  Client& client_;
  std::string endpoint_;
  std::optional<HostBuffer> staging_;  // request, then room for the reply
  uint64_t next_call_ = 1;
};

// Serves calls that arrive at one endpoint this client bound. The client
// must have a receive area (Client::SetReceiveArea) with slots large enough
// for the requests.
class Server {
 public:
  using Handler = std::function<absl::StatusOr<Reply>(const Request&)>;
  Server(Client& client, std::string endpoint) : client_(client), endpoint_(std::move(endpoint)) {}
  void Handle(const std::string& method, Handler handler) {
    handlers_[method] = std::move(handler);
  }
  // Waits up to `timeout_ms` for one request, runs its handler, sends the
  // reply. DEADLINE_EXCEEDED when none came; other errors are the transport's.
  absl::Status ServeOnce(int timeout_ms);

 private:
  absl::Status SendReply(const std::string& to, uint64_t call_id, const absl::Status& status,
                         const Reply& reply, uint32_t timeout_ms);
  Client& client_;
  std::string endpoint_;
  std::map<std::string, Handler> handlers_;
  std::optional<HostBuffer> staging_;
};

}  // namespace axon
