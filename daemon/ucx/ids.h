// What code outside daemon/ucx holds of UCX's handles: opaque values that it
// can compare and pass back to this layer, never use to call UCX.
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>

namespace axon::ucx {

class Endpoint;
class Listener;

// Which endpoint something came over (AmMessage::from), or Endpoint::id().
enum class EndpointId : uintptr_t { kNone = 0 };

inline EndpointId IdOf(ucp_ep_h ep) {
  return static_cast<EndpointId>(reinterpret_cast<uintptr_t>(ep));
}

// An incoming connection, from a Listener to Endpoint::Accept, which takes
// it over whether it accepts it or not.
class ConnectionRequest {
 public:
  ConnectionRequest() = default;

 private:
  friend class Endpoint;
  friend class Listener;
  explicit ConnectionRequest(ucp_conn_request_h handle) : handle_(handle) {}
  ucp_conn_request_h handle_ = nullptr;
};

}  // namespace axon::ucx
