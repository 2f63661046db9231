// Host eager: bytes small enough (gpu and host alike, up to
// Limits::eager_limit) travel inside the data frame; the receiver copies
// them from UCX's buffer to where they go, a memcpy for host memory and a
// copy-engine copy for GPU memory.
#pragma once

#include "daemon/transfer/transfer.h"

namespace axon::daemon {

class HostEager final : public Transfer {
 public:
  explicit HostEager(RemotePath& path) : path_(path) {}
  const char* name() const override { return "host eager"; }
  // The send's parts in place, gathered by UCX.
  void Send(NodeLink& link, Outgoing&& send) override;
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;
  // Whether Land would be done at once with no copy engine: the whole
  // message came with the frame, for host memory (or has no bytes).
  static bool LandsAtOnce(const Incoming& message, const Region& region);

 private:
  RemotePath& path_;
};

}  // namespace axon::daemon
