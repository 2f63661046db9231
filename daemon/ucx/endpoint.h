// ucx::Endpoint owns one ucp_ep_h: a connection to another daemon, made with
// UCX's sockaddr flow and peer error handling on. It sends active messages,
// and reads and writes the other daemon's memory by remote key.
// Destroying it force-closes the connection. UCX thread only.
#pragma once

#include <ucp/api/ucp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/net_address.h"
#include "daemon/ucx/remote_key.h"
#include "daemon/ucx/request.h"
#include "daemon/ucx/worker.h"

namespace axon::ucx {

// The pieces of one message's payload, back to back (most have one or two).
// A gather send's spans: inline up to a call's usual count (frame, padding
// and eight tensors), so sending them allocates no list.
using Parts = absl::InlinedVector<absl::Span<const uint8_t>, 10>;

// How UCX sends an active message's payload: its choice, or forced.
enum class AmProtocol { kAuto, kEager, kRendezvous };

class Endpoint {
 public:
  // Called once, on the UCX thread, when UCX reports the connection broken.
  using ErrorHandler = std::function<void(const absl::Status&)>;
  // Called when a send completes (OK) or fails.
  using SendDone = std::function<void(const absl::Status&)>;

  static absl::StatusOr<std::unique_ptr<Endpoint>> Connect(Worker& worker,
                                                           const SocketAddress& address,
                                                           ErrorHandler on_error);
  // Connects to another worker by its address (Worker::Address): UCX may then
  // pick any transport that reaches it, shared memory and CUDA IPC included.
  static absl::StatusOr<std::unique_ptr<Endpoint>> ConnectToWorker(
      Worker& worker, absl::Span<const uint8_t> address, ErrorHandler on_error);
  static absl::StatusOr<std::unique_ptr<Endpoint>> Accept(Worker& worker, ConnectionRequest request,
                                                          ErrorHandler on_error);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Sends active message `id` with `header` and `payload`. The header is
  // needed only during the call (UCX copies it if the send stays in flight);
  // the payload is kept alive until UCX is done with it.
  void SendAm(uint16_t id, absl::Span<const uint8_t> header, std::vector<uint8_t> payload,
              SendDone done);

  // Sends active message `id` whose payload is `payload` in place (no copy):
  // `keepalive` keeps that memory valid until UCX is done with it.
  void SendAmFrom(uint16_t id, absl::Span<const uint8_t> header, absl::Span<const uint8_t> payload,
                  std::shared_ptr<const void> keepalive, AmProtocol protocol, SendDone done,
                  MemoryKind memory = MemoryKind::kHost);

  // Like SendAmFrom, with the payload gathered from `parts` (a UCX IOV),
  // kept valid by `keep`.
  void SendAmGather(uint16_t id, absl::Span<const uint8_t> header, Parts&& parts, Keepalives&& keep,
                    AmProtocol protocol, SendDone done, MemoryKind memory = MemoryKind::kHost);

  // One-sided: writes `length` bytes at `from` to `address` in the other
  // daemon (Put), or reads them from there into `into` (Get), with `key`,
  // unpacked on this endpoint. `done` runs once UCX is done with the local
  // memory: a Get's bytes are here; a Put's may not be there yet (Flush).
  // The caller keeps the local memory and the key valid until then.
  void Put(const void* from, size_t length, uint64_t address, const RemoteKey& key, SendDone done);
  void Get(void* into, size_t length, uint64_t address, const RemoteKey& key, SendDone done);
  // Runs `done` once every operation started on this endpoint so far is
  // complete at the other daemon too.
  void Flush(SendDone done);

  // The transports UCX uses on each lane, as "tl/device" (UCX >= 1.14).
  std::vector<std::string> Transports() const;

  ucp_ep_h handle() const { return handle_; }
  // What AmMessage::from says of a message that came over this endpoint.
  EndpointId id() const { return IdOf(handle_); }

 private:
  Endpoint(Worker& worker, ErrorHandler on_error)
      : worker_(worker), on_error_(std::move(on_error)) {}
  static absl::StatusOr<std::unique_ptr<Endpoint>> Create(Worker& worker, ucp_ep_params_t& params,
                                                          ErrorHandler on_error);
  static void OnError(void* arg, ucp_ep_h ep, ucs_status_t status);
  // Checks `key` was unpacked here, then submits ucp_put_nbx or ucp_get_nbx.
  void Rma(bool put, void* local, size_t length, uint64_t address, const RemoteKey& key,
           SendDone done);
  // Submits ucp_am_send_nbx; `buffer`/`count` as UCX takes them for `datatype`.
  void Submit(uint16_t id, absl::Span<const uint8_t> header, Request request, const void* buffer,
              size_t count, ucp_datatype_t datatype, AmProtocol protocol, MemoryKind memory);

  Worker& worker_;
  ErrorHandler on_error_;
  ucp_ep_h handle_ = nullptr;
  bool failed_ = false;
  // False once destroyed: deferred error callbacks check it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace axon::ucx
