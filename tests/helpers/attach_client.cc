// Test helper: a real client process using libaxon. Attaches to axond,
// optionally registers host memory, prints "session <id>" (and "registered")
// and waits to be killed; with --detach it detaches and exits instead.
// Usage: attach_client SOCKET NAME [--register BYTES] [--detach]
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "axon/client.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: attach_client SOCKET NAME [--register BYTES] [--detach]\n";
    return 2;
  }
  size_t register_bytes = 0;
  bool detach = false;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--register") == 0 && i + 1 < argc) {
      register_bytes = std::stoull(argv[++i]);
    } else if (std::strcmp(argv[i], "--detach") == 0) {
      detach = true;
    }
  }
  auto client = axon::Client::Connect({.socket_path = argv[1], .client_name = argv[2]});
  if (!client.ok()) {
    std::cerr << "attach failed: " << client.status() << "\n";
    return 1;
  }
  std::cout << "session " << (*client)->session_id() << std::endl;
  std::vector<axon::HostBuffer> buffers;
  if (register_bytes > 0) {
    auto buffer = (*client)->AllocateHost(register_bytes);
    if (!buffer.ok()) {
      std::cerr << "register failed: " << buffer.status() << "\n";
      return 1;
    }
    std::memset(buffer->data(), 0x5a, buffer->size());
    buffers.push_back(*std::move(buffer));
    std::cout << "registered" << std::endl;
  }
  if (detach) return (*client)->Detach().ok() ? 0 : 1;
  while (true) ::pause();
}
