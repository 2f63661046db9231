// Test helper: a real client process that serves or makes calls, to be
// killed mid-call by a test.
//
//   call_peer SOCKET ENDPOINT serve
//     Serves "echo" (the request back) and "slow" (sleeps 60 s first);
//     prints "serving" and waits to be killed.
//   call_peer SOCKET ENDPOINT call TO COUNT BYTES
//     Makes COUNT "slow" calls to TO, each with a registered uint8 tensor of
//     BYTES; prints "called" and waits to be killed.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "axon/call.h"

namespace {

int Fail(const std::string& what, const absl::Status& status) {
  std::cout << "failed: " << what << ": " << status << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: call_peer SOCKET ENDPOINT serve | call TO COUNT BYTES\n";
    return 2;
  }
  const std::string endpoint = argv[2], mode = argv[3];
  auto client = axon::Client::Connect(
      {.socket_path = argv[1], .client_name = endpoint, .progress_thread = true});
  if (!client.ok()) return Fail("attach", client.status());
  if (auto bound = (*client)->BindEndpoint(endpoint); !bound.ok())
    return Fail("bind", bound.status());
  if (mode == "serve") {
    axon::Server server(**client, endpoint);
    server.Handle("echo", [](const axon::Request& r) -> absl::StatusOr<axon::Reply> {
      return axon::Reply{.header = std::string(r.header), .tensors = r.tensors};
    });
    server.Handle("slow", [](const axon::Request&) -> absl::StatusOr<axon::Reply> {
      std::this_thread::sleep_for(std::chrono::seconds(60));
      return axon::Reply{};
    });
    if (auto st = server.Start(); !st.ok()) return Fail("serve", st);
    std::cout << "serving" << std::endl;
    while (true) pause();
  }
  if (mode == "call" && argc >= 7) {
    const std::string to = argv[4];
    const int count = std::stoi(argv[5]);
    const int64_t bytes = std::stoll(argv[6]);
    auto buffer = (*client)->AllocateHost(static_cast<size_t>(bytes));
    if (!buffer.ok()) return Fail("allocate", buffer.status());
    auto tensor = axon::Tensor::Of(*buffer, 0, axon::dtype::kUInt8, {bytes});
    if (!tensor.ok()) return Fail("tensor", tensor.status());
    axon::Caller caller(**client, endpoint);
    std::vector<axon::PendingCall> calls;
    for (int i = 0; i < count; ++i) {
      auto call = caller.CallAsync(to, "slow", "", {*tensor}, {.timeout_ms = 60000});
      if (!call.ok()) return Fail("call", call.status());
      calls.push_back(*call);
    }
    std::cout << "called" << std::endl;
    while (true) pause();
  }
  std::cerr << "unknown mode " << mode << "\n";
  return 2;
}
