// ucx::RemoteKey owns one ucp_rkey_h: another daemon's packed remote key
// (MemoryHandle::PackRemoteKey there) unpacked on the endpoint to that daemon,
// for one-sided access to its memory with Endpoint::Put and Get. A key works
// only on the endpoint it was unpacked on; Put and Get check that. UCX thread
// only.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon::ucx {

class Endpoint;

class RemoteKey {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteKey>> Unpack(const Endpoint& endpoint,
                                                           absl::Span<const uint8_t> packed);
  ~RemoteKey();
  RemoteKey(const RemoteKey&) = delete;
  RemoteKey& operator=(const RemoteKey&) = delete;

  ucp_rkey_h handle() const { return handle_; }
  ucp_ep_h endpoint() const { return endpoint_; }

 private:
  RemoteKey(ucp_rkey_h handle, ucp_ep_h endpoint) : handle_(handle), endpoint_(endpoint) {}

  ucp_rkey_h handle_;
  ucp_ep_h endpoint_;
};

}  // namespace axon::ucx
