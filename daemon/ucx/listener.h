// ucx::Listener owns one ucp_listener_h: accepts connections from other
// daemons on a TCP address (UCX's sockaddr flow). UCX thread only.
#pragma once

#include <ucp/api/ucp.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/net_address.h"
#include "daemon/ucx/worker.h"

namespace axon::ucx {

class Listener {
 public:
  // Called for each incoming connection; accept it with Endpoint::Accept,
  // which takes the request over whether it succeeds or fails.
  using ConnectionHandler = std::function<void(ConnectionRequest request)>;

  static absl::StatusOr<std::unique_ptr<Listener>> Create(Worker& worker,
                                                          const SocketAddress& address,
                                                          ConnectionHandler on_connection);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The address actually bound (port 0 in the config picks a free port).
  const SocketAddress& address() const { return address_; }

 private:
  Listener(Worker& worker, ConnectionHandler handler)
      : worker_(worker), on_connection_(std::move(handler)) {}
  static void OnConnection(ucp_conn_request_h request, void* arg);

  Worker& worker_;
  ConnectionHandler on_connection_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  ucp_listener_h handle_ = nullptr;
  SocketAddress address_;
};

}  // namespace axon::ucx
