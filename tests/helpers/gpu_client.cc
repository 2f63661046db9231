// Test helper: a client with 1 GiB (or what argv says) of GPU memory
// registered and a send of all of it in flight, waiting for a receiver that
// never posts, until it is killed.
//   gpu_client SOCKET ENDPOINT TO BYTES ipc|vmm
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "axon/client.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: gpu_client SOCKET ENDPOINT TO BYTES ipc|vmm\n");
    return 2;
  }
  const size_t bytes = std::strtoull(argv[4], nullptr, 10);
  const std::string mode = argv[5];
  auto client = axon::Client::Connect({.socket_path = argv[1], .client_name = "gpu-client"});
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", std::string(client.status().message()).c_str());
    return 1;
  }
  std::optional<axon::CudaBuffer> buffer;
  if (mode == "vmm") {
    auto b = (*client)->AllocateCuda(bytes);
    if (!b.ok()) {
      std::fprintf(stderr, "allocate: %s\n", std::string(b.status().message()).c_str());
      return 1;
    }
    buffer.emplace(*std::move(b));
  } else {
    void* data = nullptr;
    if (cudaMalloc(&data, bytes) != cudaSuccess) return 1;
    auto b = (*client)->RegisterCuda(data, bytes);
    if (!b.ok()) {
      std::fprintf(stderr, "register: %s\n", std::string(b.status().message()).c_str());
      return 1;
    }
    buffer.emplace(*std::move(b));
  }
  if (!(*client)->BindEndpoint(argv[2]).ok()) return 1;
  auto op = (*client)->Send(argv[2], argv[3], 1, *buffer, 0, bytes);
  if (!op.ok()) {
    std::fprintf(stderr, "send: %s\n", std::string(op.status().message()).c_str());
    return 1;
  }
  std::printf("in flight\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
