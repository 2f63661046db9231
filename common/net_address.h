// "host:port" socket addresses for the peer plane: numeric IPv4 ("10.0.0.2:13337")
// or IPv6 ("[fe80::1]:13337"), no name lookups.
#pragma once

#include <sys/socket.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace axon {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  uint16_t port() const;
  // 0.0.0.0 or [::]: a listener's wildcard, which no one can dial.
  bool IsUnspecified() const;
  std::string ToString() const;
};

absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text);
// From a sockaddr UCX (or the kernel) gave us.
SocketAddress SocketAddressFrom(const sockaddr* addr);

}  // namespace axon
