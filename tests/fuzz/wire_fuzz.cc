// libFuzzer target for the wire decoders (the daemon-to-daemon header and
// bodies, the call frame, the session socket's messages, and one-sided
// operation lists and window descriptors): any bytes, any claimed payload size.
// Whatever decodes must re-encode to something that decodes the same.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/wire/call.h"
#include "common/wire/data.h"
#include "common/wire/handshake.h"
#include "common/wire/header.h"
#include "common/wire/session.h"
#include "common/wire/window.h"

namespace {

using axon::wire::CallFrame;

bool SameBytes(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

bool SameFrame(const CallFrame& a, const CallFrame& b) {
  if (a.kind != b.kind || a.flags != b.flags || a.frame_length != b.frame_length ||
      a.call_id != b.call_id || a.timeout_ms != b.timeout_ms || a.method != b.method ||
      a.reply_room != b.reply_room || a.reply_apart != b.reply_apart || a.code != b.code ||
      a.message != b.message || !SameBytes(a.header, b.header) ||
      a.tensors.size() != b.tensors.size()) {
    return false;
  }
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    if (!(x.desc == y.desc) || x.bytes != y.bytes || x.placement != y.placement ||
        x.inline_offset != y.inline_offset) {
      return false;
    }
  }
  return true;
}

// A call message that decodes must re-encode to a frame of the same length
// (one encoding per frame), and the frame with the message's inline bytes
// behind it must decode to an equal frame.
void CallRoundTrip(absl::Span<const uint8_t> message) {
  using namespace axon::wire;
  CallFrame frame;
  if (!DecodeCallFrame(message, frame).ok()) return;
  const auto size = CallFrameSize(frame);
  if (!size.ok() || *size != frame.frame_length) std::abort();
  std::vector<uint8_t> again(message.size());
  const auto written = EncodeCallFrame(frame, absl::MakeSpan(again));
  if (!written.ok() || *written != *size) std::abort();
  std::copy(message.begin() + static_cast<ptrdiff_t>(*size), message.end(),
            again.begin() + static_cast<ptrdiff_t>(*size));
  // The encoding is canonical (no field has two spellings), so it is the
  // very bytes that came in.
  if (!SameBytes(again, message)) std::abort();
  CallFrame round;
  if (!DecodeCallFrame(again, round).ok() || !SameFrame(frame, round)) std::abort();
}

}  // namespace

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
        round->from != body->from || round->to != body->to || round->window.op != body->window.op ||
        round->window.id != body->window.id || round->window.offset != body->window.offset ||
        round->window.length != body->window.length || round->window.token != body->window.token ||
        round->window.capability != body->window.capability) {
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
  CallRoundTrip(input);
  // A local client can send the daemon any session message: whatever
  // decodes re-encodes to the very bytes (one spelling per message).
  if (auto request = DecodeSessionRequest(input); request.ok()) {
    if (!SameBytes(EncodeSessionRequest(*request), input)) std::abort();
  }
  // A one-sided operation's list is read from memory the client can write,
  // and a window descriptor comes from anyone: the same rule for both.
  if (auto list = DecodeWindowOpList(input); list.ok()) {
    std::vector<uint8_t> again(input.size());
    EncodeWindowOpList(*list, input.subspan(list->notify_offset()), again.data());
    if (!SameBytes(again, input)) std::abort();
  }
  // An RMA request comes from another daemon: the same rule.
  if (auto rma = DecodeRmaRequest(input); rma.ok()) {
    if (!SameBytes(EncodeRmaRequest(*rma), input)) std::abort();
  }
  const absl::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
  if (auto window = DecodeWindowDescriptor(text); window.ok()) {
    if (EncodeWindowDescriptor(*window) != text) std::abort();
  }
  return 0;
}
