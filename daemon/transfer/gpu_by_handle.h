// GPU bytes by CUDA IPC handle, between daemons on one host. The bounce paths
// copy a GPU tensor three times (into the sender's bounce buffer, across, out
// of the receiver's); here the receiving daemon opens the sender's client
// memory from its legacy IPC handle and copies once, straight into the posted
// buffer, as UCX's own cuda_ipc would (UCX cannot itself use memory opened
// from another process's handle).
//
// Order and fallback: the first message naming a handle a node has not
// opened yet is a probe, and it holds the link: later sends to that node
// wait for the node's kDataHandleAnswer, sent as soon as it tried to open the
// handle (before the message is matched: an unmatched probe holds nothing up
// for long). A node that could not open it did not deliver the message,
// which then goes through bounce buffers, still ahead of the sends behind
// it; that node takes no more handles on this connection.
//
// Lifetime: the receiver keeps each handle open (one mapping per allocation,
// shared with its own registry) until the sender says it let go of the
// memory (kDataHandleClosed, sent from the peer tick once the sender's own
// mapping has closed) or the node goes down, so a client's cudaFree frees
// the memory within a tick of its last unregistration.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/wire/data.h"
#include "daemon/cuda/gpu_copier.h"
#include "daemon/memory/cuda_region.h"
#include "daemon/transfer/transfer.h"

namespace axon::daemon {

class GpuByHandle final : public Transfer {
 public:
  // `ipc`: the daemon's IPC mappings, which peers' handles share; null when
  // it takes none. `enabled`: gpu.same_host is handles.
  GpuByHandle(RemotePath& path, GpuCopier& copier, std::shared_ptr<IpcMappings> ipc, bool enabled);
  const char* name() const override { return "gpu by handle"; }
  // Whether `send` can go by handle on `link`.
  bool Takes(const NodeLink& link, const Outgoing& send);
  void Send(NodeLink& link, Outgoing&& send) override;
  // Copies from the sender's memory, opened by Open.
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;

  // Opens an arriving message's handle (in sequence order, before the
  // engine sees it); false when it could not (answered and refused).
  bool Open(Incoming& in);
  // Opened (a probe's answer: later sends may go) or refused (it goes again
  // through bounce buffers).
  void OnAnswer(const std::string& node, const wire::AckBody& answer);
  void OnClosed(const std::string& node, const std::string& handle);
  // The send answered by its ack: delivered, so its handle opened there.
  void Answered(NodeLink& link, const Outgoing& send, const wire::AckBody& ack);
  // Tells the nodes holding handles whose memory this daemon let go (on the
  // peer plane's tick).
  void Sweep();
  // Node `node` went: its handles are closed here once no landing holds
  // them; none are held there any more.
  void NodeDown(const std::string& node);
  uint64_t handles_open() const { return opened_.size(); }

 private:
  struct Shared {
    std::weak_ptr<const void> mapping;
    std::set<std::string> nodes;
  };
  // Tells the nodes holding `handle` that this daemon let go of its memory.
  void Close(const std::string& handle, Shared& shared);
  // Tells the sender of `in` its handle opened (OK) or why not.
  void Answer(const Incoming& in, const absl::Status& opened);
  absl::StatusOr<std::string> BusId(int device);

  RemotePath& path_;
  GpuCopier& copier_;
  std::shared_ptr<IpcMappings> ipc_;
  const bool enabled_;
  // Sent: the handles each node holds, until this daemon's mapping of their
  // memory closes. Received: peers' handles opened here, by (node, handle),
  // until the node says they closed or goes down.
  std::map<std::string, Shared> shared_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const cuda::DeviceMemory>> opened_;
  std::map<int, std::string> bus_ids_;
};

}  // namespace axon::daemon
