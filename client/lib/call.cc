#include "axon/call.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/wire/header.h"

namespace axon {
namespace {

// Tags of call traffic: one for requests, and per call id for its reply.
constexpr uint64_t kRequestTag = 0x43414c4c00000000ull;    // "CALL"
constexpr uint64_t kReplyTagBase = 0x5245504c00000000ull;  // "REPL"
constexpr uint32_t kCallMagic = 0x31435841;                // "AXC1"
constexpr uint8_t kKindRequest = 1, kKindReply = 2;
constexpr size_t kMaxTensors = 1024;

size_t RoundUp(size_t n) { return (n + 63) & ~size_t{63}; }

// The frame: what BodyWriter writes, then the tensors' bytes back to back.
struct Frame {
  uint8_t kind = 0;
  uint64_t call_id = 0;
  uint32_t timeout_ms = 0;  // requests: how long the caller waits
  std::string method;       // requests
  uint32_t code = 0;        // replies
  std::string message;      // replies
  std::string header;
  std::vector<absl::Span<const uint8_t>> tensors;
};

std::vector<uint8_t> EncodePrefix(const Frame& f, absl::Span<const Tensor> tensors) {
  wire::BodyWriter w;
  w.U32(kCallMagic);
  w.U8(f.kind);
  w.U64(f.call_id);
  w.U32(f.timeout_ms);
  w.String(f.method);
  w.U32(f.code);
  w.String(f.message.substr(0, 1024));
  w.U32(static_cast<uint32_t>(f.header.size()));
  w.Fixed({reinterpret_cast<const uint8_t*>(f.header.data()), f.header.size()});
  w.U32(static_cast<uint32_t>(tensors.size()));
  for (const Tensor& t : tensors) w.U64(t.size);
  return w.Take();
}

absl::StatusOr<Frame> Decode(const uint8_t* data, size_t length) {
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed call frame: ", why));
  };
  wire::BodyReader r({data, length});
  auto magic = r.U32();
  if (!magic.ok() || *magic != kCallMagic) return bad("not a call frame");
  Frame f;
  auto kind = r.U8();
  auto id = r.U64();
  auto timeout = r.U32();
  auto method = r.String(1024);
  auto code = r.U32();
  auto message = r.String(1024);
  auto header_length = r.U32();
  if (!header_length.ok()) return bad(header_length.status().message());
  auto header = r.Fixed(*header_length);
  auto count = r.U32();
  if (!count.ok()) return bad(count.status().message());
  if (*count > kMaxTensors) return bad("too many tensors");
  std::vector<uint64_t> sizes;
  for (uint32_t i = 0; i < *count; ++i) {
    auto size = r.U64();
    if (!size.ok()) return bad(size.status().message());
    sizes.push_back(*size);
  }
  f.kind = *kind;
  f.call_id = *id;
  f.timeout_ms = *timeout;
  f.method = *std::move(method);
  f.code = *code;
  f.message = *std::move(message);
  f.header.assign(header->begin(), header->end());
  size_t offset = length - r.remaining();
  for (uint64_t size : sizes) {
    if (size > length - offset) return bad("tensors past the end");
    f.tensors.push_back({data + offset, size});
    offset += size;
  }
  return f;
}

// Writes the frame into `into` (which must hold FrameBytes); returns its size.
size_t Write(uint8_t* into, const std::vector<uint8_t>& prefix, absl::Span<const Tensor> tensors) {
  std::memcpy(into, prefix.data(), prefix.size());
  size_t offset = prefix.size();
  for (const Tensor& t : tensors) {
    if (t.size > 0) std::memcpy(into + offset, t.data, t.size);
    offset += t.size;
  }
  return offset;
}

size_t FrameBytes(const std::vector<uint8_t>& prefix, absl::Span<const Tensor> tensors) {
  size_t n = prefix.size();
  for (const Tensor& t : tensors) n += t.size;
  return n;
}

absl::Status Grow(Client& client, std::optional<HostBuffer>& staging, size_t bytes) {
  if (staging && staging->size() >= bytes) return absl::OkStatus();
  auto buffer = client.AllocateHost(std::max<size_t>(bytes, size_t{1} << 20));
  if (!buffer.ok()) return buffer.status();
  staging = *std::move(buffer);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Reply> Caller::Call(const std::string& to, const std::string& method,
                                   const std::string& header, absl::Span<const Tensor> tensors,
                                   CallOptions options) {
  if (tensors.size() > kMaxTensors) return absl::InvalidArgumentError("too many tensors");
  const uint64_t call_id = next_call_++;
  const auto prefix = EncodePrefix({.kind = kKindRequest,
                                    .call_id = call_id,
                                    .timeout_ms = options.timeout_ms,
                                    .method = method,
                                    .header = header},
                                   tensors);
  const size_t request_bytes = FrameBytes(prefix, tensors);
  const size_t reply_offset = RoundUp(request_bytes);
  if (auto st = Grow(client_, staging_, reply_offset + options.max_reply_bytes); !st.ok()) {
    return st;
  }
  auto* base = static_cast<uint8_t*>(staging_->data());
  Write(base, prefix, tensors);
  const OpOptions deadline{.timeout_ms = options.timeout_ms};
  auto recv = client_.PostRecv(endpoint_, kReplyTagBase ^ call_id, *staging_, reply_offset,
                               options.max_reply_bytes, deadline);
  if (!recv.ok()) return recv.status();
  auto send = client_.Send(endpoint_, to, kRequestTag, *staging_, 0, request_bytes, deadline);
  if (!send.ok()) {
    (void)client_.Cancel(*recv);
    return send.status();
  }
  const int wait_ms = static_cast<int>(options.timeout_ms) + 5000;  // the daemon enforces it
  auto sent = client_.Wait(*send, wait_ms);
  if (!sent.ok() || !sent->status.ok()) {
    if (client_.Cancel(*recv).ok()) (void)client_.Wait(*recv, wait_ms);
    if (!sent.ok()) return sent.status();
    return absl::Status(sent->status.code(),
                        absl::StrCat("call ", method, " to ", to, ": ", sent->status.message()));
  }
  auto received = client_.Wait(*recv, wait_ms);
  if (!received.ok()) return received.status();
  if (!received->status.ok()) {
    return absl::Status(received->status.code(), absl::StrCat("call ", method, " to ", to, ": ",
                                                              received->status.message()));
  }
  auto frame = Decode(base + reply_offset, received->length);
  if (!frame.ok()) return frame.status();
  if (frame->kind != kKindReply || frame->call_id != call_id) {
    return absl::DataLossError("the reply does not answer this call");
  }
  if (frame->code != 0) {
    return absl::Status(static_cast<absl::StatusCode>(frame->code), frame->message);
  }
  Reply reply{.header = std::move(frame->header)};
  for (auto t : frame->tensors) reply.tensors.emplace_back(t.begin(), t.end());
  return reply;
}

absl::Status Server::ServeOnce(int timeout_ms) {
  auto message = client_.Receive(endpoint_, timeout_ms);
  if (!message.ok()) return message.status();
  auto frame = Decode(message->data, message->length);
  if (message->tag != kRequestTag || !frame.ok() || frame->kind != kKindRequest) {
    (void)client_.Release(*message);
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint ", endpoint_, " got a message that is not a call, from ", message->from));
  }
  absl::StatusOr<Reply> reply = absl::UnimplementedError(
      absl::StrCat("endpoint ", endpoint_, " serves no method '", frame->method, "'"));
  if (auto it = handlers_.find(frame->method); it != handlers_.end()) {
    Request request{.method = frame->method,
                    .from = message->from,
                    .header = std::move(frame->header),
                    .tensors = std::move(frame->tensors)};
    reply = it->second(request);
  }
  (void)client_.Release(*message);
  const uint32_t reply_timeout = frame->timeout_ms == 0 ? 10000 : frame->timeout_ms;
  return SendReply(message->from, frame->call_id, reply.status(), reply.ok() ? *reply : Reply{},
                   reply_timeout);
}

absl::Status Server::SendReply(const std::string& to, uint64_t call_id, const absl::Status& status,
                               const Reply& reply, uint32_t timeout_ms) {
  std::vector<Tensor> tensors;
  for (const auto& t : reply.tensors) tensors.push_back({t.data(), t.size()});
  const auto prefix = EncodePrefix({.kind = kKindReply,
                                    .call_id = call_id,
                                    .code = static_cast<uint32_t>(status.code()),
                                    .message = std::string(status.message()),
                                    .header = reply.header},
                                   tensors);
  const size_t bytes = FrameBytes(prefix, tensors);
  if (auto st = Grow(client_, staging_, bytes); !st.ok()) return st;
  Write(static_cast<uint8_t*>(staging_->data()), prefix, tensors);
  // The caller gave up when its deadline passed; so does the reply.
  auto send = client_.Send(endpoint_, to, kReplyTagBase ^ call_id, *staging_, 0, bytes,
                           {.timeout_ms = timeout_ms});
  if (!send.ok()) return send.status();
  auto sent = client_.Wait(*send, static_cast<int>(timeout_ms) + 5000);
  if (!sent.ok()) return sent.status();
  return sent->status;
}

}  // namespace axon
