// Defaults shared by axond and its clients, so both sides agree on where the
// control socket is without being told.
#pragma once

#include <string>

namespace axon {

// Where a systemd-managed axond listens (RuntimeDirectory=axon).
inline constexpr char kDefaultSocketPath[] = "/run/axon/axond.sock";
// Overrides kDefaultSocketPath for axond's default and for every client.
inline constexpr char kSocketEnvVar[] = "AXON_SOCKET";

// $AXON_SOCKET when set and non-empty, else kDefaultSocketPath.
std::string DefaultSocketPath();

}  // namespace axon
