// How a call's request or reply becomes messages: the frame in a pool block,
// the inline tensors as further parts read in place (padded to the frame's
// 64-byte alignment), and the separate tensors as messages of their own.
// Shared by Caller and Server. Internal to libaxon.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "axon/client.h"
#include "axon/tensor.h"
#include "client/lib/call_runtime.h"
#include "client/lib/session.h"
#include "common/wire/call.h"

namespace axon::internal {

// Host tensors of at most this many bytes that go inline at the head of a
// message are copied into its frame's block rather than read in place: a
// part of its own costs a ring entry on each side and an entry of UCX's
// gather list, more than the copy, and UCX copies messages this small into
// its own buffers whatever the parts.
inline constexpr uint64_t kCopiedInline = 2048;

struct OutgoingCall {
  wire::CallFrame frame;
  std::shared_ptr<Block> frame_block;
  absl::InlinedVector<Source, wire::kInlineTensors> sources;  // per tensor
  // The message: the frame block, then each inline tensor after its pad.
  absl::InlinedVector<View, 2 * wire::kInlineTensors + 1> parts;
};

// Resolves `tensors` and lays out `frame` (its other fields set by the
// caller): host tensors inline while the message stays within
// `inline_budget` bytes and the parts within a send's limit, GPU tensors
// and tensor i with bit i of `apart` set separate. Writes the frame.
// Into `out` (whatever it held before), in place: an OutgoingCall is a few
// kilobytes, and moving one element by element showed in profiles.
absl::Status BuildCall(CallRuntime& runtime, wire::CallFrame frame,
                       absl::Span<const Tensor> tensors, uint64_t inline_budget, uint64_t apart,
                       OutgoingCall& out);

// Sends `call` from `from` to `to`: the message with `tag`, then each
// separate tensor with its CallTensorTag. Each send's completion runs the
// callback `then()` made for it just before; `sent` gets each operation
// (the message first). Stops at the first that cannot be submitted.
// `quiet`: the message goes as a quiet send without a deadline (a request,
// whose reply says it arrived, and whose reply's receive has the deadline).
absl::Status SendCall(Client& client, const std::string& from, const std::string& to, uint64_t tag,
                      const OutgoingCall& call, bool reply, uint32_t timeout_ms,
                      absl::FunctionRef<Session::Callback()> then,
                      absl::FunctionRef<void(Operation)> sent, bool quiet = false);

// Views of the inline tensors of a decoded frame whose message lies at
// `message` (in `buffer`, when registered), and placeholders for the
// separate ones.
std::vector<Tensor> InlineTensors(const wire::CallFrame& frame, const uint8_t* message,
                                  const Buffer* buffer);

// What is left of a deadline, as a ring timeout (at least 1 ms; 0 for none).
uint32_t RemainingMs(absl::Time deadline);

}  // namespace axon::internal
