// Test helper: a real client process that sends or receives a stream of
// messages through its daemon with libaxon.
//
//   msg_peer SOCKET ENDPOINT send DEST COUNT [--size B] [--window N] [--id N] [--hold]
//     Sends COUNT messages of B bytes (at least 16; default 16) to DEST with
//     tag 1, keeping N in flight (default 64). Each starts with (id, seq).
//     Prints "done COUNT" and exits 0 when all completed OK, else prints the
//     first failure and exits 1. --hold: submits the first window, prints
//     "submitted", and waits to be killed.
//   msg_peer SOCKET ENDPOINT recv COUNT [--size B]
//     Posts COUNT receives of B bytes with tag 1, prints "posted", and waits
//     to be killed.
#include <unistd.h>

#include <cstring>
#include <deque>
#include <iostream>
#include <string>

#include "axon/client.h"

namespace {

int Fail(const std::string& what, const absl::Status& status) {
  std::cout << "failed: " << what << ": " << status << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: msg_peer SOCKET ENDPOINT send DEST COUNT [options] | recv COUNT\n";
    return 2;
  }
  const std::string mode = argv[3];
  const bool sending = mode == "send";
  int first_option = sending ? 6 : 5;
  if (sending && argc < 6) return 2;
  const uint64_t count = std::stoull(argv[sending ? 5 : 4]);
  uint64_t size = 16, window = 64, id = 0;
  bool hold = false;
  for (int i = first_option; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--size" && i + 1 < argc) size = std::stoull(argv[++i]);
    if (arg == "--window" && i + 1 < argc) window = std::stoull(argv[++i]);
    if (arg == "--id" && i + 1 < argc) id = std::stoull(argv[++i]);
    if (arg == "--hold") hold = true;
  }
  auto client = axon::Client::Connect({.socket_path = argv[1], .client_name = argv[2]});
  if (!client.ok()) return Fail("attach", client.status());
  if (auto bound = (*client)->BindEndpoint(argv[2]); !bound.ok())
    return Fail("bind", bound.status());

  if (!sending) {
    auto buffer = (*client)->AllocateHost(size * count);
    if (!buffer.ok()) return Fail("allocate", buffer.status());
    for (uint64_t i = 0; i < count; ++i) {
      auto op = (*client)->PostRecv(argv[2], 1, *buffer, i * size, size);
      if (!op.ok()) return Fail("post", op.status());
    }
    std::cout << "posted" << std::endl;
    while (true) ::pause();
  }

  const std::string dest = argv[4];
  if (size < 16) size = 16;
  if (window == 0) window = 1;
  auto buffer = (*client)->AllocateHost(size * window);
  if (!buffer.ok()) return Fail("allocate", buffer.status());
  auto* bytes = static_cast<uint8_t*>(buffer->data());
  std::deque<axon::Operation> in_flight;
  auto wait_oldest = [&]() -> absl::Status {
    auto done = (*client)->Wait(in_flight.front(), 60000);
    in_flight.pop_front();
    if (!done.ok()) return done.status();
    return done->status;
  };
  for (uint64_t seq = 0; seq < count; ++seq) {
    if (in_flight.size() == window) {
      if (hold) break;
      if (auto st = wait_oldest(); !st.ok()) return Fail("send", st);
    }
    uint8_t* slot = bytes + (seq % window) * size;
    std::memcpy(slot, &id, 8);
    std::memcpy(slot + 8, &seq, 8);
    auto op = (*client)->Send(argv[2], dest, 1, *buffer, (seq % window) * size, size);
    if (!op.ok()) return Fail("submit", op.status());
    in_flight.push_back(*op);
  }
  if (hold) {
    std::cout << "submitted" << std::endl;
    while (true) ::pause();
  }
  while (!in_flight.empty()) {
    if (auto st = wait_oldest(); !st.ok()) return Fail("send", st);
  }
  std::cout << "done " << count << std::endl;
  return 0;
}
