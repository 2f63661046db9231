// Messages with file descriptors over a Unix SOCK_SEQPACKET socket
// (SCM_RIGHTS): how clients hand memfds and other fds to axond. A message
// arrives whole or not at all; received fds are owned, and closed on error.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"

namespace axon {

inline constexpr size_t kMaxFdsPerMessage = 8;
inline constexpr size_t kMaxSessionMessage = 4096;

struct ReceivedMessage {
  std::vector<uint8_t> bytes;  // empty with eof: the peer closed the socket
  std::vector<UniqueFd> fds;
  bool eof = false;
};

// Sends one message with `fds` attached (which stay open on this side).
absl::Status SendMessage(int socket, absl::Span<const uint8_t> bytes,
                         absl::Span<const int> fds = {});

// Receives one message. UNAVAILABLE(EAGAIN) would block: the status message
// is "would block" and the code kUnavailable; a truncated message or fd list
// is an error (and its fds are closed).
absl::StatusOr<ReceivedMessage> ReceiveMessage(int socket);

bool IsWouldBlock(const absl::Status& status);

}  // namespace axon
