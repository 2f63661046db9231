// Example: send a tensor from one node to another with libaxon.
//
//   send_tensor recv SOCKET ENDPOINT          # on node B: waits for one tensor
//   send_tensor send SOCKET ENDPOINT NODE_B/ENDPOINT BYTES   # on node A
//
// Each process attaches to its own node's axond (SOCKET), binds an endpoint,
// and shares a host buffer with the daemon. The daemons move the bytes: the
// sender's buffer is read in place, and the data lands straight in the
// receiver's buffer. Both print a checksum of the tensor.
#include <cstdio>
#include <cstring>
#include <string>

#include "axon/client.h"

namespace {

constexpr uint64_t kTensorTag = 42;
constexpr size_t kMaxBytes = size_t{1} << 30;

uint64_t Checksum(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "send_tensor: %s: %s\n", what, status.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool send = argc == 6 && std::strcmp(argv[1], "send") == 0;
  const bool recv = argc == 4 && std::strcmp(argv[1], "recv") == 0;
  if (!send && !recv) {
    std::fprintf(stderr,
                 "usage: send_tensor recv SOCKET ENDPOINT\n"
                 "       send_tensor send SOCKET ENDPOINT NODE/ENDPOINT BYTES\n");
    return 2;
  }
  const std::string endpoint = argv[3];

  // 1. Attach to the local daemon and bind an endpoint: "node/endpoint".
  auto client = axon::Client::Connect({.socket_path = argv[2], .client_name = "send_tensor"});
  if (!client.ok()) return Fail("attach", client.status());
  auto address = (*client)->BindEndpoint(endpoint);
  if (!address.ok()) return Fail("bind", address.status());

  // 2. Memory shared with the daemon. A trainer would put its tensor here.
  const size_t bytes = send ? std::stoull(argv[5]) : kMaxBytes;
  auto buffer = (*client)->AllocateHost(bytes == 0 ? 1 : bytes);
  if (!buffer.ok()) return Fail("allocate", buffer.status());
  auto* data = static_cast<uint8_t*>(buffer->data());

  if (recv) {
    // 3a. Post the buffer for the next tensor, and wait for it.
    auto op = (*client)->PostRecv(endpoint, kTensorTag, *buffer, 0, buffer->size());
    if (!op.ok()) return Fail("post", op.status());
    std::printf("%s waiting for a tensor\n", address->c_str());
    std::fflush(stdout);
    auto done = (*client)->Wait(*op, 600000);
    if (!done.ok()) return Fail("wait", done.status());
    if (!done->status.ok()) return Fail("receive", done->status);
    std::printf("received %zu bytes, checksum %016llx\n", done->length,
                static_cast<unsigned long long>(Checksum(data, done->length)));
    return 0;
  }

  // 3b. Fill the tensor and send it; completion means it is in the receiver's memory.
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<uint8_t>(i * 31 + 7);
  auto op =
      (*client)->Send(endpoint, argv[4], kTensorTag, *buffer, 0, bytes, {.timeout_ms = 60000});
  if (!op.ok()) return Fail("send", op.status());
  auto done = (*client)->Wait(*op, 120000);
  if (!done.ok()) return Fail("wait", done.status());
  if (!done->status.ok()) return Fail("send", done->status);
  std::printf("sent %zu bytes to %s, checksum %016llx\n", bytes, argv[4],
              static_cast<unsigned long long>(Checksum(data, bytes)));
  return 0;
}
