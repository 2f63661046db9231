// The kinds of transfer: each way a message's bytes move between two daemons
// is a Transfer with the same interface, in a file of its own. RemotePath
// routes every send and every arrival to one (RemotePath::SendKind and
// LandKind); the kind moves the bytes, and the node's link (NodeLink) keeps
// order, window and acks whatever the kind.
//
//   host_eager       host bytes small enough to travel in the frame
//   host_rendezvous  larger host bytes, pulled by the receiver in place
//   gpu_bounce       GPU bytes through a bounce buffer of the daemon's own:
//                    pinned host memory (staged) or device memory (direct)
//   gpu_by_handle    GPU bytes between daemons on one host, by CUDA IPC
//                    handle: the receiver copies straight from the sender
//   chunking         a large GPU send as a stream of bounce-buffer chunks
//   window_rma       a one-sided operation's host blocks, moved by the
//                    window owner's daemon with UCX RMA (Serve)
//
// A kind belongs to its RemotePath (its parent, which outlives it) and runs
// on the loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "daemon/engine/records.h"
#include "daemon/link/node_link.h"

namespace axon::daemon {

class RemotePath;

// What runs once a message's bytes are in place (or could not be).
using Then = std::function<void(absl::Status)>;

class Transfer {
 public:
  virtual ~Transfer() = default;
  // For logs.
  virtual const char* name() const = 0;
  // Moves `send` to its node on `link`: the window let it go, and
  // RemotePath::SendKind chose this kind for it. It completes through
  // RemotePath::Finish, on its ack or on a failure.
  virtual void Send(NodeLink& link, Outgoing&& send) = 0;
  // Puts the bytes of `message` at `into` (in `region`, kept mapped until
  // then), then runs `then`. The ack is the caller's.
  virtual void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                    uint8_t* into, Then then) = 0;
};

// Messages and bytes by GPU path, sent and received (axonctl stats).
struct TransferCounters {
  uint64_t staged = 0, direct = 0, by_handle = 0;
  uint64_t staged_bytes = 0, direct_bytes = 0, by_handle_bytes = 0;
};

}  // namespace axon::daemon
