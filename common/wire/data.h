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
//   kDataAcks    the ids of several kData delivered (all OK), one frame for
//                what a poll of the receiving daemon landed; a failure
//                always goes in its own kDataAck.
//   kDataCancel  CancelBody: the sender withdraws a message; answered by an
//                ack (CANCELLED, or OK when it was delivered already).
//   kData by handle: between daemons on one host, a GPU message may travel as
//                the CUDA IPC handle of the sender's memory instead of its
//                bytes (`handle` set, no payload): the receiving daemon opens
//                it and copies the bytes itself.
//   kDataHandleAnswer  AckBody, as soon as the handle is opened or not: OK
//                for a `probe` (the message is answered by its kDataAck
//                later), or the reason it could not be opened (then the
//                message was not delivered, and the sender sends the bytes).
//   kDataHandleClosed   the handle: the sender's memory behind it is gone, so
//                the receiver closes its mapping.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/wire/window.h"

namespace axon::wire {

inline constexpr size_t kMaxEndpointName = 63;
inline constexpr size_t kMaxStatusMessage = 1024;

// A one-sided operation's frame (common/wire/window.h), by kind:
//   kWrite       the payload, for window `id` at `offset`;
//   kRead        a request (no payload) for `length` bytes of window `id` at
//                `offset`, answered once the bytes landed at the initiator;
//   kReadReply   those bytes, sent back by the owner's daemon for the
//                initiator's read `token` (no window fields);
//   kNotify*     an operation's notification (the payload), for the
//                window's notify endpoint once the operation's bytes are in
//                place; checked like a write or a read;
//   kRma*        an RMA request (the payload, window.h): the owner's daemon
//                pulls each block from the initiator's memory into the
//                window (kRmaWrite) or pushes it from the window there and
//                flushes (kRmaRead) with UCX RMA, then answers the frame
//                (with a notification inside, delivered as a message to the
//                window's notify endpoint, once that landed).
// The owner's daemon checks `capability` against the window for every kind
// but kReadReply.
enum class WindowFrame : uint8_t {
  kNone = 0,
  kWrite = 1,
  kNotifyWrite = 2,
  kRead = 3,
  kReadReply = 4,
  kNotifyRead = 5,
  kRmaWrite = 6,
  kRmaRead = 7,
};
inline constexpr uint8_t kMaxWindowFrame = 7;
struct WindowTarget {
  WindowFrame op = WindowFrame::kNone;
  uint64_t id = 0;
  uint64_t offset = 0;
  uint64_t length = 0;  // kRead, kReadReply: the bytes read
  uint64_t token = 0;   // kRead, kReadReply: the initiator's, for the reply
  Capability capability{};
};

// Its strings are std::string (DataBody) or views of bytes that outlive it
// (DataView: what the per-message path encodes and decodes, no copies).
template <typename Str>
struct BasicDataBody {
  uint64_t message_id = 0;  // the sender's, unique per connection
  uint64_t tag = 0;
  Str from;               // the sending endpoint, on the sending node
  Str to;                 // the receiving endpoint, on the receiving node
  uint64_t total = 0;     // chunked: the whole message's bytes; 0: not chunked
  uint64_t offset = 0;    // chunked: where this chunk goes
  uint64_t first_id = 0;  // chunked: chunk 0's message id
  // By handle: the legacy CUDA IPC handle of the allocation holding the
  // message, the PCI bus id of its GPU, where the message starts in the
  // allocation, and its length. Empty `handle`: the bytes are the payload.
  Str handle;
  Str bus_id;
  uint64_t handle_offset = 0;
  uint64_t length = 0;
  bool probe = false;  // answer with kDataHandleAnswer once opened
  // A one-sided operation's frame (after `probe` on the wire, only when op
  // is not kNone: u8 op | u64 id | u64 offset | u64 length | u64 token |
  // 16 bytes capability).
  WindowTarget window;
};
using DataBody = BasicDataBody<std::string>;
using DataView = BasicDataBody<absl::string_view>;

// `body` as views of its strings.
DataView View(const DataBody& body);

inline constexpr size_t kMaxIpcHandle = 64;
inline constexpr size_t kMaxBusId = 64;

struct AckBody {
  uint64_t message_id = 0;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string message;

  absl::Status status() const { return absl::Status(code, message); }
};

// `reuse`: a buffer whose storage the result takes (see BodyWriter).
std::vector<uint8_t> EncodeData(const DataView& body, std::vector<uint8_t> reuse = {});
// The whole frame, `header` and then `body`, into `out` (its storage reused):
// what the per-message path sends, in one pass.
struct Header;
void EncodeDataFrame(const Header& header, const DataView& body, std::vector<uint8_t>& out);
inline std::vector<uint8_t> EncodeData(const DataBody& body, std::vector<uint8_t> reuse = {}) {
  return EncodeData(View(body), std::move(reuse));
}
// The view's strings point into `bytes`.
absl::StatusOr<DataView> DecodeDataView(absl::Span<const uint8_t> bytes);
absl::StatusOr<DataBody> DecodeData(absl::Span<const uint8_t> bytes);
namespace internal {
// Field by field, each read checked with its own error: what DecodeDataView
// (one bounds check per field, no Status each) falls back to for a frame it
// refuses, to say why. Both accept the same frames (tests compare them).
absl::StatusOr<DataView> DecodeDataChecked(absl::Span<const uint8_t> bytes);
}  // namespace internal
std::vector<uint8_t> EncodeAck(uint64_t message_id, const absl::Status& status);
absl::StatusOr<AckBody> DecodeAck(absl::Span<const uint8_t> bytes);
// At most this many ids in one kDataAcks.
inline constexpr size_t kMaxAckedIds = 1024;
// `reuse`: storage for the result (a buffer kept from one batch to the next).
std::vector<uint8_t> EncodeAcks(absl::Span<const uint64_t> message_ids,
                                std::vector<uint8_t> reuse = {});
absl::StatusOr<std::vector<uint64_t>> DecodeAcks(absl::Span<const uint8_t> bytes,
                                                 std::vector<uint64_t> reuse = {});
std::vector<uint8_t> EncodeCancel(uint64_t message_id);
absl::StatusOr<uint64_t> DecodeCancel(absl::Span<const uint8_t> bytes);
std::vector<uint8_t> EncodeHandleClosed(const std::string& handle);
absl::StatusOr<std::string> DecodeHandleClosed(absl::Span<const uint8_t> bytes);

}  // namespace axon::wire
