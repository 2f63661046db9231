// One-sided transfers by UCX RMA: an operation's blocks travel as one frame
// naming them (an RMA request: address and packed remote key in the
// initiator's daemon, offset in the window), and the owner's daemon moves
// the bytes itself: it pulls a write's blocks into the window (get) and
// pushes a read's out of it (put, then a flush), then answers the frame
// (or, when the request carries the operation's notification, delivers that
// first and answers once it landed: the engine's part, RmaArrive).
//
// The owner, not the initiator, drives the RMA so that the owner's checks
// (capability, access list, bounds, revocation) stand for every operation:
// no other daemon ever holds a key to a window, so revoking one needs no
// round of key withdrawals, and a window's memory is never reachable after
// its revocation returns. The initiator's key reaches only its own region:
// registered on its first RMA operation and kept until the region goes, so
// the daemons that served it could reach it until then (peers are
// authenticated daemons, as for every other transfer).
//
// Host memory only: GPU blocks and GPU windows go as data frames
// (the other kinds), since the UCX axond is built with may not take CUDA
// memory.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/wire/window.h"
#include "daemon/transfer/transfer.h"

namespace axon::daemon {

class WindowRma final : public Transfer {
 public:
  explicit WindowRma(RemotePath& path) : path_(path) {}
  const char* name() const override { return "window rma"; }
  // The initiator: `send.rma`'s blocks, with a key per region (registered
  // on first use and kept with the region), as one eager frame.
  void Send(NodeLink& link, Outgoing&& send) override;
  // An RMA request is served, not landed (Serve): fails.
  void Land(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region, uint8_t* into,
            Then then) override;
  // The owner: moves every block of `request` between the window starting
  // at `window` (in `region`, kept mapped until then) and the initiator,
  // node `message.node`, then runs `then`. The caller checked the blocks
  // against the window.
  void Serve(const Incoming& message, const wire::RmaRequest& request,
             std::shared_ptr<Region> region, uint8_t* window, Then then);

  uint64_t served() const { return served_; }
  uint64_t served_bytes() const { return served_bytes_; }

 private:
  // The packed key to all of `region`, made on first use.
  absl::StatusOr<const std::vector<uint8_t>*> KeyOf(Region& region);

  RemotePath& path_;
  uint64_t served_ = 0, served_bytes_ = 0;
};

}  // namespace axon::daemon
