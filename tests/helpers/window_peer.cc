// Test helper: a client process on either side of a one-sided transfer, to
// be killed mid-way by a test.
//   window_peer owner SOCKET BYTES
//     binds "owner", exposes BYTES of host memory notifying "owner", prints
//     "descriptor <hex>" and waits to be killed;
//   window_peer writer SOCKET HEX_DESCRIPTOR BLOCKS BLOCK_BYTES
//     binds "writer" and writes batches of BLOCKS blocks of BLOCK_BYTES into
//     the window, one after another, printing "wrote <n>" after each, until
//     killed (or a batch fails: "failed <status>", exit 1).
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "axon/client.h"

namespace {

int Fail(const std::string& what, const absl::Status& st) {
  std::cout << "failed " << what << ": " << st << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      "usage: window_peer owner SOCKET BYTES | writer SOCKET HEX_DESCRIPTOR BLOCKS BLOCK_BYTES\n";
  if (argc < 4) {
    std::cerr << usage;
    return 2;
  }
  const std::string role = argv[1];
  auto client = axon::Client::Connect({.socket_path = argv[2], .client_name = role});
  if (!client.ok()) return Fail("attach", client.status());
  if (auto bound = (*client)->BindEndpoint(role); !bound.ok()) return Fail("bind", bound.status());
  if (role == "owner") {
    auto memory = (*client)->AllocateHost(std::stoull(argv[3]));
    if (!memory.ok()) return Fail("allocate", memory.status());
    auto window = (*client)->Expose(*memory, 0, memory->size(), {.notify_endpoint = "owner"});
    if (!window.ok()) return Fail("expose", window.status());
    std::cout << "descriptor " << absl::BytesToHexString(window->descriptor) << std::endl;
    while (true) ::pause();
  }
  if (role != "writer" || argc < 6) {
    std::cerr << usage;
    return 2;
  }
  auto window = axon::Window::FromDescriptor(absl::HexStringToBytes(argv[3]));
  if (!window.ok()) return Fail("descriptor", window.status());
  const size_t blocks = std::stoull(argv[4]), block_bytes = std::stoull(argv[5]);
  auto memory = (*client)->AllocateHost(blocks * block_bytes);
  if (!memory.ok()) return Fail("allocate", memory.status());
  std::vector<axon::Block> batch;
  for (size_t i = 0; i < blocks; ++i) {
    batch.push_back({&*memory, i * block_bytes, (i * block_bytes) % window->length, block_bytes});
  }
  for (uint64_t n = 1;; ++n) {
    auto op = (*client)->Write("writer", *window, batch);
    if (!op.ok()) return Fail("write", op.status());
    auto done = (*client)->Wait(*op, 30000);
    if (!done.ok()) return Fail("wait", done.status());
    if (!done->status.ok()) return Fail("write", done->status);
    std::cout << "wrote " << n << std::endl;
  }
}
