// libaxon, part: calls as messages (call_message.h).
#include "client/lib/call_message.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/lib/submit.h"
#include "common/clock.h"
#include "common/wire/ring_ops.h"

namespace axon::internal {

absl::Status BuildCall(CallRuntime& runtime, wire::CallFrame frame_fields,
                       absl::Span<const Tensor> tensors, uint64_t inline_budget, uint64_t apart,
                       OutgoingCall& out) {
  if (tensors.size() > wire::kMaxCallTensors) {
    return absl::InvalidArgumentError(absl::StrCat("a call carries at most ", wire::kMaxCallTensors,
                                                   " tensors; this one has ", tensors.size()));
  }
  out.sources.clear();
  out.parts.clear();
  out.frame_block.reset();
  out.frame = std::move(frame_fields);
  wire::CallFrame& frame = out.frame;
  frame.tensors.clear();
  // Small host tensors are only checked here: those that end up at the head
  // of the message are copied into the frame's block below, and the others
  // resolved (registered, or copied to the pool) then.
  absl::InlinedVector<const uint8_t*, wire::kInlineTensors> small(tensors.size(), nullptr);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    Source source;
    if (!t.on_gpu() && !wire::ReplyTensorApart(apart, i)) {
      auto bytes = runtime.HostBytes(t, kCopiedInline);  // checks the descriptor first
      if (!bytes.ok()) return bytes.status();
      small[i] = bytes->first;
      source.bytes = bytes->second;
    }
    if (small[i] == nullptr) {
      auto resolved = runtime.Resolve(t);  // checks the descriptor first
      if (!resolved.ok()) return resolved.status();
      source = *std::move(resolved);
    }
    wire::CallTensor entry{.desc = t.desc, .bytes = source.bytes};
    entry.desc.byte_offset = 0;
    out.sources.push_back(std::move(source));
    frame.tensors.push_back(std::move(entry));
  }
  // Placement: first everything inline that may be, then the frame's size
  // (which does not depend on placement) decides what fits.
  for (size_t i = 0; i < tensors.size(); ++i) {
    const bool asked_apart = wire::ReplyTensorApart(apart, i);
    frame.tensors[i].placement = (asked_apart || tensors[i].on_gpu()) ? wire::Placement::kSeparate
                                                                      : wire::Placement::kInline;
  }
  auto frame_size = wire::CallFrameSize(frame);
  if (!frame_size.ok()) return frame_size.status();
  // Parts: the frame, then per inline tensor its bytes and maybe a pad.
  size_t parts = 1;
  uint64_t end = *frame_size;
  for (wire::CallTensor& t : frame.tensors) {
    if (t.placement != wire::Placement::kInline) continue;
    const uint64_t start = (end + wire::kCallAlign - 1) & ~uint64_t{wire::kCallAlign - 1};
    const bool fits = start + t.bytes <= inline_budget && parts + 2 < wire::kMaxSendParts;
    if (!fits) {
      t.placement = wire::Placement::kSeparate;
      continue;
    }
    end = start + t.bytes;
    parts += 2;
  }
  const uint64_t total = wire::InlineLayout(frame, *frame_size);
  // The frame block holds the frame, then the small inline tensors that
  // follow it, copied in (one part instead of two more each), then
  // kCallAlign zeros, which every later pad (shorter) reuses.
  uint64_t head = *frame_size;
  size_t copied = 0;  // tensors before this index are in the block, if inline
  for (; copied < frame.tensors.size(); ++copied) {
    const wire::CallTensor& t = frame.tensors[copied];
    if (t.placement != wire::Placement::kInline) continue;
    if (small[copied] == nullptr && t.bytes > 0) break;
    head = t.inline_offset + t.bytes;
  }
  // The small ones not copied are read where they lie: inline after the
  // head, or apart (they did not fit).
  for (size_t i = 0; i < frame.tensors.size(); ++i) {
    if (small[i] == nullptr) continue;
    if (i < copied && frame.tensors[i].placement == wire::Placement::kInline) continue;
    auto resolved = runtime.Resolve(tensors[i]);
    if (!resolved.ok()) return resolved.status();
    out.sources[i] = *std::move(resolved);
    small[i] = nullptr;
  }
  // The first part: the block up to the first tensor read in place (past a
  // pad of its zeros), or to the message's end.
  uint64_t first = total;
  for (size_t i = copied; i < frame.tensors.size(); ++i) {
    if (frame.tensors[i].placement == wire::Placement::kInline) {
      first = frame.tensors[i].inline_offset;
      break;
    }
  }
  auto block = runtime.host().Get(head + wire::kCallAlign);
  if (!block.ok()) return block.status();
  auto* bytes = static_cast<uint8_t*>((*block)->data);
  auto written = wire::EncodeCallFrame(frame, absl::MakeSpan(bytes, (*block)->size));
  if (!written.ok()) return written.status();
  std::memset(bytes + *written, 0, head + wire::kCallAlign - *written);
  for (size_t i = 0; i < copied; ++i) {
    const wire::CallTensor& t = frame.tensors[i];
    if (t.placement == wire::Placement::kInline && t.bytes > 0) {
      std::memcpy(bytes + t.inline_offset, small[i], t.bytes);
    }
  }
  out.parts.push_back(View{(*block)->buffer, (*block)->offset, first});
  uint64_t at = first;
  for (size_t i = copied; i < frame.tensors.size(); ++i) {
    const wire::CallTensor& t = frame.tensors[i];
    if (t.placement != wire::Placement::kInline) continue;
    if (t.inline_offset > at) {  // a pad, shorter than kCallAlign
      const uint64_t pad = t.inline_offset - at;
      out.parts.push_back(View{(*block)->buffer, (*block)->offset + head, pad});
    }
    if (t.bytes > 0) {
      out.parts.push_back(View{out.sources[i].buffer, out.sources[i].offset, t.bytes});
    }
    at = t.inline_offset + t.bytes;
  }
  out.frame_block = *std::move(block);
  return absl::OkStatus();
}

absl::Status SendCall(Client& client, const std::string& from, const std::string& to, uint64_t tag,
                      const OutgoingCall& call, bool reply, uint32_t timeout_ms,
                      absl::FunctionRef<Session::Callback()> then,
                      absl::FunctionRef<void(Operation)> sent, bool quiet) {
  const OpOptions options{.timeout_ms = timeout_ms};
  auto op =
      Submit::Send(client, from, to, tag, call.parts, quiet ? OpOptions{} : options, then(), quiet);
  if (!op.ok()) return op.status();
  sent(*op);
  for (size_t i = 0; i < call.frame.tensors.size(); ++i) {
    const wire::CallTensor& t = call.frame.tensors[i];
    if (t.placement != wire::Placement::kSeparate) continue;
    const Source& s = call.sources[i];
    const View part{s.buffer, s.offset, s.bytes};
    auto tensor_op =
        Submit::Send(client, from, to, wire::CallTensorTag(call.frame.call_id, i, reply),
                     {&part, 1}, options, then());
    if (!tensor_op.ok()) return tensor_op.status();
    sent(*tensor_op);
  }
  return absl::OkStatus();
}

std::vector<Tensor> InlineTensors(const wire::CallFrame& frame, const uint8_t* message,
                                  const Buffer* buffer) {
  std::vector<Tensor> tensors;
  tensors.reserve(frame.tensors.size());
  for (const wire::CallTensor& t : frame.tensors) {
    Tensor tensor{.desc = t.desc};
    tensor.desc.byte_offset = 0;
    if (t.placement == wire::Placement::kInline) {
      tensor.desc.device = Device{};
      tensor.desc.memory = MemoryKind::kHostMemfd;
      tensor.data = const_cast<uint8_t*>(message + t.inline_offset);
      tensor.buffer = buffer;
    }
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

uint32_t RemainingMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(deadline - axon::Now());
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 1, UINT32_MAX));
}

}  // namespace axon::internal
