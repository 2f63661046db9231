// PeerPlane: what the message path (RemotePath) needs of the peer plane:
// frames to and from the nodes that are up, and word of the ones that go
// down. PeerManager is the real one; unit tests of the message path use a
// fake that records frames and delivers the frames a test makes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/wire/header.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/memory_handle.h"
#include "daemon/ucx/remote_key.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

class PeerPlane {
 public:
  // A message-path frame (kData, kDataAck, kDataCancel, ...) from peer
  // `node`; `body` points into `message.header`, and the handler may take
  // `message.data` or `message.pending`.
  using DataHandler = std::function<void(const std::string& node, const wire::Header& header,
                                         absl::Span<const uint8_t> body, ucx::AmMessage& message)>;
  // Peer `node`'s connection is gone, for reason `why` (it may come back as
  // a new one).
  using DownHandler = std::function<void(const std::string& node, const std::string& why)>;
  // A connection ConnectFromLoop asked for is up.
  using UpHandler = std::function<void(const std::string& node)>;
  struct Handlers {
    DataHandler on_data;
    DownHandler on_down;
    std::function<void()> on_tick;  // every tick of the plane (keepalives)
    UpHandler on_up;
  };
  // Writes a frame in place: it gets the header and the buffer to write
  // header and body into (wire::EncodeDataFrame).
  using FrameWriter =
      absl::FunctionRef<void(const wire::Header& header, std::vector<uint8_t>& out)>;

  virtual ~PeerPlane() = default;

  // Empty handlers: none.
  virtual void SetHandlersFromLoop(Handlers handlers) = 0;
  // NOT_FOUND for a node that is not a peer, UNAVAILABLE when it is not up.
  virtual absl::Status CheckUpFromLoop(const std::string& node) = 0;
  // For a node that is not up and is connected on first use (a member found
  // through etcd): starts connecting, if it is not already, and returns true;
  // the up or the down handler follows. False for any other node.
  virtual bool ConnectFromLoop(const std::string& node) = 0;
  // Drops the connection to `node` (a protocol error above the plane); it
  // reconnects like after any failure. The down handler runs.
  virtual void DropFromLoop(const std::string& node, const std::string& why) = 0;
  // Whether node `node` said (in its Hello) that its UCX takes CUDA memory.
  virtual bool PeerTakesCudaFromLoop(const std::string& node) const = 0;
  // Whether node `node` is up and shares GPUs with this one (cuda_ipc).
  virtual bool PeerSharesGpusFromLoop(const std::string& node) = 0;
  // Sends a frame written by `frame` whose payload is `parts`, back to back,
  // in place (kept valid by `keep` until sent); fails like CheckUpFromLoop.
  virtual absl::Status SendFrameFromLoop(const std::string& node, wire::MessageType type,
                                         FrameWriter frame, ucx::Parts&& parts,
                                         ucx::Keepalives&& keep, ucx::AmProtocol protocol,
                                         uint64_t sequence,
                                         ucx::MemoryKind memory = ucx::MemoryKind::kHost) = 0;

  // One-sided transfers by UCX RMA (daemon/transfer/window_rma).
  // Registers [address, address + length) of this daemon's memory, so that
  // a peer can reach it with the handle's packed key.
  virtual absl::StatusOr<std::unique_ptr<ucx::MemoryHandle>> RegisterFromLoop(void* address,
                                                                              size_t length) = 0;
  // Node `node`'s packed key, unpacked on its connection (the one frames
  // from it came on); fails like CheckUpFromLoop.
  virtual absl::StatusOr<std::unique_ptr<ucx::RemoteKey>> UnpackKeyFromLoop(
      const std::string& node, absl::Span<const uint8_t> packed) = 0;
  // Ucx::Endpoint::Put / Get / Flush on that connection; `done` always
  // runs (with UNAVAILABLE when the node is not up).
  virtual void RmaFromLoop(const std::string& node, bool put, void* local, size_t length,
                           uint64_t address, const ucx::RemoteKey& key,
                           ucx::Endpoint::SendDone done) = 0;
  virtual void FlushFromLoop(const std::string& node, ucx::Endpoint::SendDone done) = 0;

  // The same with the body encoded already.
  absl::Status SendDataFromLoop(const std::string& node, wire::MessageType type,
                                absl::Span<const uint8_t> body, ucx::Parts&& parts,
                                ucx::Keepalives&& keep, ucx::AmProtocol protocol, uint64_t sequence,
                                ucx::MemoryKind memory = ucx::MemoryKind::kHost);
};

// axon's one active-message id on the peer plane's endpoints; the wire
// header says what a message is.
inline constexpr uint16_t kPeerAmId = 1;

// SendFrameFromLoop's work once the endpoint is known: frames `type` with
// `frame` into `buffer` (kept by the caller for the next frame) and sends
// it and `parts` on `ep`. Returns the bytes sent, frame and payload.
uint64_t SendFrameOn(ucx::Endpoint& ep, std::vector<uint8_t>& buffer, wire::MessageType type,
                     PeerPlane::FrameWriter frame, ucx::Parts&& parts, ucx::Keepalives&& keep,
                     ucx::AmProtocol protocol, uint64_t sequence, ucx::MemoryKind memory);

// Whether UCX gave `ep` a cuda_ipc lane (it may still be wiring one up).
bool HasCudaIpcLane(const ucx::Endpoint& ep);

// Whether `message` is a rendezvous one that is not message-path data
// (`decoded`, its header, says so, or does not decode): the peer planes pull
// those whole (PullThenHandle) before they look at them.
inline bool MustPull(const ucx::AmMessage& message, const absl::StatusOr<wire::Decoded>& decoded) {
  return message.pending && (!decoded.ok() || decoded->header.type != wire::MessageType::kData);
}
// Pulls `message`'s bytes onto the heap, then hands it to `handle` like an
// eager one, unless `alive` went false meanwhile; a failed pull is logged
// for `who`.
void PullThenHandle(ucx::AmMessage& message, std::shared_ptr<bool> alive, std::string who,
                    std::function<void(ucx::AmMessage&)> handle);

}  // namespace axon::daemon
