#include "daemon/peer/peer_plane.h"

#include <utility>

#include "absl/strings/match.h"
#include "common/log.h"

namespace axon::daemon {

absl::Status PeerPlane::SendDataFromLoop(const std::string& node, wire::MessageType type,
                                         absl::Span<const uint8_t> body, ucx::Parts&& parts,
                                         ucx::Keepalives&& keep, ucx::AmProtocol protocol,
                                         uint64_t sequence, ucx::MemoryKind memory) {
  return SendFrameFromLoop(
      node, type,
      [body](const wire::Header& header, std::vector<uint8_t>& out) {
        wire::FrameInto(header, body, out);
      },
      std::move(parts), std::move(keep), protocol, sequence, memory);
}

uint64_t SendFrameOn(ucx::Endpoint& ep, std::vector<uint8_t>& buffer, wire::MessageType type,
                     PeerPlane::FrameWriter frame, ucx::Parts&& parts, ucx::Keepalives&& keep,
                     ucx::AmProtocol protocol, uint64_t sequence, ucx::MemoryKind memory) {
  uint64_t payload = 0;
  for (const auto& p : parts) payload += p.size();
  wire::Header header{.type = type, .payload_length = payload, .sequence = sequence};
  frame(header, buffer);
  const uint64_t bytes = buffer.size() + payload;
  if (parts.size() <= 1 && keep.size() <= 1) {
    ep.SendAmFrom(kPeerAmId, buffer, parts.empty() ? absl::Span<const uint8_t>() : parts[0],
                  keep.empty() ? nullptr : std::move(keep[0]), protocol, nullptr, memory);
  } else {
    ep.SendAmGather(kPeerAmId, buffer, std::move(parts), std::move(keep), protocol, nullptr,
                    memory);
  }
  return bytes;
}

void PullThenHandle(ucx::AmMessage& message, std::shared_ptr<bool> alive, std::string who,
                    std::function<void(ucx::AmMessage&)> handle) {
  auto shared = std::make_shared<ucx::AmMessage>(std::move(message));
  uint8_t* into = shared->data.Resize(shared->pending->length());
  ucx::Worker::ReceiveData(std::move(shared->pending), into,
                           [alive = std::move(alive), who = std::move(who),
                            handle = std::move(handle), shared](const absl::Status& st) {
                             if (!*alive) return;
                             if (!st.ok()) {
                               spdlog::warn("{}: receiving a message failed: {}", who,
                                            st.message());
                               return;
                             }
                             handle(*shared);
                           });
}

bool HasCudaIpcLane(const ucx::Endpoint& ep) {
  for (const std::string& lane : ep.Transports()) {
    if (absl::StartsWith(lane, "cuda_ipc/")) return true;
  }
  return false;
}

}  // namespace axon::daemon
