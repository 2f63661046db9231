// The processes of a soak run besides the daemons: a server per node (echo
// calls, and a sink that takes messages from its receive area), and
// clients that call and send to both nodes until they are killed. Each
// prints its counts to stdout once a second ("calls N messages N errors N
// last-error TEXT"), so that a killed one still leaves them behind.
#pragma once

#include <string>

namespace axon::soak {

struct RoleOptions {
  std::string socket;          // its daemon's control socket
  std::string name;            // endpoint prefix and client name
  std::string node_a, node_b;  // the two nodes, for addresses
};

// Serves "echo" on endpoint <name> and sinks messages sent to <name>-sink
// until SIGTERM. Returns the exit code.
int RunServer(const RoleOptions& o);
// Calls echo on both nodes' servers and sends messages to both sinks,
// 4 KiB to 256 KiB, 16 calls in flight, until killed.
int RunClient(const RoleOptions& o);

}  // namespace axon::soak
