// The bodies of the message-path frames between daemons (see header.h for
// the header in front of them):
//
//   kData        DataBody; the message bytes travel as the payload, eager or
//                rendezvous. header.sequence orders kData per connection. A
//                large staged GPU message travels in chunks, one kData each,
//                in order: `total` is then the whole message's length,
//                `offset` the chunk's place in it, and `first_id` the
//                message id of chunk 0, which names the message.
//   kDataAck     AckBody: delivered (OK) or why not; the sender's operation
//                completes with it.
//   kDataCancel  CancelBody: the sender withdraws a message; answered by an
//                ack (CANCELLED, or OK when it was delivered already).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon::wire {

inline constexpr size_t kMaxEndpointName = 63;
inline constexpr size_t kMaxStatusMessage = 1024;

struct DataBody {
  uint64_t message_id = 0;  // the sender's, unique per connection
  uint64_t tag = 0;
  std::string from;       // the sending endpoint, on the sending node
  std::string to;         // the receiving endpoint, on the receiving node
  uint64_t total = 0;     // chunked: the whole message's bytes; 0: not chunked
  uint64_t offset = 0;    // chunked: where this chunk goes
  uint64_t first_id = 0;  // chunked: chunk 0's message id
};

struct AckBody {
  uint64_t message_id = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;

  absl::Status status() const { return absl::Status(code, message); }
};

std::vector<uint8_t> EncodeData(const DataBody& body);
absl::StatusOr<DataBody> DecodeData(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeAck(uint64_t message_id, const absl::Status& status);
absl::StatusOr<AckBody> DecodeAck(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeCancel(uint64_t message_id);
absl::StatusOr<uint64_t> DecodeCancel(absl::Span<const uint8_t> bytes);

}  // namespace axon::wire
