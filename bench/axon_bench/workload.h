// axon-bench's workloads, run through libaxon against real daemons: ping-pong
// latency between two clients, and streams with a window of messages in
// flight (message rate and bandwidth) over one or more client pairs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "axon/client.h"

namespace axon::bench {

// One client pair: the sender on one daemon, the receiver on the same or
// another daemon, each with its endpoint bound and a shared buffer.
struct Pair {
  std::unique_ptr<Client> sender, receiver;
  std::string sender_endpoint, receiver_endpoint;
  std::string sender_address, receiver_address;  // "node/endpoint"
  std::unique_ptr<HostBuffer> send_buffer, receive_buffer;
};

// Connects pair `index` to the daemons at `send_socket` and `receive_socket`
// with buffers of `bytes` each; with `place`, both clients name the pair's
// placement (ClientOptions::placement), so one engine shard serves both
// ends of a local pair.
absl::StatusOr<Pair> MakePair(const std::string& send_socket, const std::string& receive_socket,
                              int index, size_t bytes, bool place);

// Waits until a message from the pair's sender reaches its receiver: across
// two daemons, sends fail UNAVAILABLE until the daemons see each other.
absl::Status WaitUntilConnected(Pair& pair, int attempts);

struct Latency {
  double min_us = 0, p50_us = 0, p99_us = 0;  // one way: round trip / 2
};
// `iterations` round trips of `size` bytes (the receiver echoes each back).
absl::StatusOr<Latency> PingPong(Pair& pair, size_t size, int iterations);

struct Stream {
  double messages_per_s = 0;
  double gbytes_per_s = 0;  // 1e9 bytes
};
// Each pair streams `count` messages of `size` bytes, `window` in flight, all
// pairs at once; the rates are summed over the pairs.
absl::StatusOr<Stream> RunStreams(std::vector<Pair>& pairs, size_t size, int count, int window);

}  // namespace axon::bench
