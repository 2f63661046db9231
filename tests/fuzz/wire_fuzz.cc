// libFuzzer target for the wire decoder: any bytes, any claimed payload size.
// Whatever decodes must re-encode to something that decodes the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/wire/data.h"
#include "common/wire/handshake.h"
#include "common/wire/header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace axon::wire;
  if (size < 1) return 0;
  const uint64_t payload = data[0];
  auto input = absl::MakeConstSpan(data + 1, size - 1);
  auto decoded = Decode(input, payload);
  if (decoded.ok()) {
    const auto again = Encode(decoded->header, decoded->body);
    if (again.size() != input.size()) std::abort();
  }
  // The bodies are decoded on their own too, as a peer could send any of them.
  if (auto hello = DecodeHello(input); hello.ok()) {
    auto round = DecodeHello(EncodeHello(*hello));
    if (!round.ok() || round->node_name != hello->node_name ||
        round->transports != hello->transports || round->proof != hello->proof) {
      std::abort();
    }
  }
  (void)DecodeProof(input);
  (void)DecodeReject(input);
  if (auto body = DecodeData(input); body.ok()) {
    auto round = DecodeData(EncodeData(*body));
    if (!round.ok() || round->message_id != body->message_id || round->tag != body->tag ||
        round->from != body->from || round->to != body->to) {
      std::abort();
    }
  }
  if (auto ack = DecodeAck(input); ack.ok()) {
    auto round = DecodeAck(EncodeAck(ack->message_id, ack->status()));
    // A status OK drops its message; every other code keeps it.
    if (!round.ok() || round->code != ack->code ||
        (ack->code != absl::StatusCode::kOk && round->message != ack->message)) {
      std::abort();
    }
  }
  (void)DecodeCancel(input);
  return 0;
}
