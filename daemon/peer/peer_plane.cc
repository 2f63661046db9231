#include "daemon/peer/peer_plane.h"

#include <utility>

namespace axon::daemon {

absl::Status PeerPlane::SendDataFromLoop(const std::string& node, wire::MessageType type,
                                         absl::Span<const uint8_t> body, ucx::Parts parts,
                                         ucx::Keepalives keep, ucx::AmProtocol protocol,
                                         uint64_t sequence, ucx::MemoryKind memory) {
  return SendFrameFromLoop(
      node, type,
      [body](const wire::Header& header, std::vector<uint8_t>& out) {
        wire::FrameInto(header, body, out);
      },
      std::move(parts), std::move(keep), protocol, sequence, memory);
}

}  // namespace axon::daemon
