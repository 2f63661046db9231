// LinkTransport: what a NodeLink needs from the connection under it. The
// engine's is the peer plane (PeerManager); unit tests use a fake that
// records the frames.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/wire/header.h"

namespace axon::daemon {

class LinkTransport {
 public:
  virtual ~LinkTransport() = default;
  // Sends a small frame (acks, cancels) to `node`. A failure to send shows
  // up later as the node going down, so none is returned.
  virtual void SendControl(const std::string& node, wire::MessageType type,
                           absl::Span<const uint8_t> body) = 0;
  // Drops the connection to `node`: everything in flight on it fails.
  virtual void Drop(const std::string& node, const std::string& why) = 0;
};

}  // namespace axon::daemon
