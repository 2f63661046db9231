#include "daemon/ucx/remote_key.h"

#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {

absl::StatusOr<std::unique_ptr<RemoteKey>> RemoteKey::Unpack(const Endpoint& endpoint,
                                                             absl::Span<const uint8_t> packed) {
  if (packed.empty()) return absl::InvalidArgumentError("an empty remote key");
  ucp_rkey_h handle = nullptr;
  if (auto st = ToStatus(ucp_ep_rkey_unpack(endpoint.handle(), packed.data(), &handle),
                         "ucp_ep_rkey_unpack");
      !st.ok()) {
    return st;
  }
  return std::unique_ptr<RemoteKey>(new RemoteKey(handle, endpoint.handle()));
}

RemoteKey::~RemoteKey() { ucp_rkey_destroy(handle_); }

}  // namespace axon::ucx
