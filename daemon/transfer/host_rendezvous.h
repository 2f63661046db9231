// Host rendezvous: larger host bytes stay on the sender until the receiving
// daemon has matched the message; it then pulls them (UCX rendezvous, RDMA
// or shared memory where there is one) straight into the posted buffer.
#pragma once

#include "daemon/transfer/transfer.h"

namespace axon::daemon {

class HostRendezvous final : public Transfer {
 public:
  explicit HostRendezvous(RemotePath& path) : path_(path) {}
  const char* name() const override { return "host rendezvous"; }
  // The send's parts in place: UCX goes rendezvous past the eager limit.
  void Send(NodeLink& link, Outgoing&& send) override;
  // Into host memory (GPU memory goes through GpuBounce).
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;

 private:
  RemotePath& path_;
};

}  // namespace axon::daemon
