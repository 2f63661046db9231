#include "common/wire/header.h"

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace axon::wire {
namespace {

// The kHeaderSize bytes at `out`, for a body of `body_size` bytes.
void WriteHeader(const Header& header, size_t body_size, uint8_t* out) {
  Store<uint32_t>(out, kMagic);
  Store<uint16_t>(out + 4, header.version);
  Store<uint16_t>(out + 6, static_cast<uint16_t>(header.type));
  Store<uint32_t>(out + 8, header.flags);
  Store<uint32_t>(out + 12, static_cast<uint32_t>(body_size));
  Store<uint64_t>(out + 16, header.payload_length);
  Store<uint64_t>(out + 24, header.sequence);
}

}  // namespace

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "hello";
    case MessageType::kHelloAuth:
      return "hello-auth";
    case MessageType::kReject:
      return "reject";
    case MessageType::kPing:
      return "ping";
    case MessageType::kPong:
      return "pong";
    case MessageType::kData:
      return "data";
    case MessageType::kDataAck:
      return "data-ack";
    case MessageType::kDataCancel:
      return "data-cancel";
    case MessageType::kDataBind:
      return "data-bind";
    case MessageType::kDataHandleAnswer:
      return "data-handle-answer";
    case MessageType::kDataHandleClosed:
      return "data-handle-closed";
    case MessageType::kDataAcks:
      return "data-acks";
    case MessageType::kIdleClose:
      return "idle-close";
  }
  return "unknown";
}

uint8_t* FrameRoom(const Header& header, size_t body_size, std::vector<uint8_t>& out) {
  out.resize(kHeaderSize + body_size);
  WriteHeader(header, body_size, out.data());
  return out.data() + kHeaderSize;
}

void FrameInto(const Header& header, absl::Span<const uint8_t> body, std::vector<uint8_t>& out) {
  uint8_t* at = FrameRoom(header, body.size(), out);
  if (!body.empty()) std::memcpy(at, body.data(), body.size());
}

std::vector<uint8_t> Encode(const Header& header, absl::Span<const uint8_t> body) {
  std::vector<uint8_t> out;
  FrameInto(header, body, out);
  return out;
}

std::vector<uint8_t> Frame(const Header& header, std::vector<uint8_t> body) {
  const size_t body_size = body.size();
  body.insert(body.begin(), kHeaderSize, 0);
  WriteHeader(header, body_size, body.data());
  return body;
}

absl::StatusOr<Decoded> Decode(absl::Span<const uint8_t> bytes, uint64_t payload_size) {
  if (bytes.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("message truncated: ", bytes.size(), " bytes, header needs ", kHeaderSize));
  }
  const uint8_t* p = bytes.data();
  const uint32_t magic = Load<uint32_t>(p);
  if (magic != kMagic) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad magic 0x%08x (not an axon peer)", magic));
  }
  Decoded d;
  d.header.version = Load<uint16_t>(p + 4);
  if (d.header.version != kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "wire protocol version ", d.header.version, " is not this daemon's version ", kVersion,
        d.header.version > kVersion ? " (the peer is newer)" : " (the peer is older)"));
  }
  const uint16_t type = Load<uint16_t>(p + 6);
  if (type == 0 || type > kMaxMessageType) {
    return absl::InvalidArgumentError(absl::StrCat("unknown message type ", type));
  }
  d.header.type = static_cast<MessageType>(type);
  d.header.flags = Load<uint32_t>(p + 8);
  d.header.body_length = Load<uint32_t>(p + 12);
  d.header.payload_length = Load<uint64_t>(p + 16);
  d.header.sequence = Load<uint64_t>(p + 24);
  if (d.header.body_length > kMaxBodyLength) {
    return absl::InvalidArgumentError(absl::StrCat("body length ", d.header.body_length,
                                                   " exceeds the limit of ", kMaxBodyLength));
  }
  if (d.header.body_length != bytes.size() - kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("body length ", d.header.body_length,
                                                   " does not match the ",
                                                   bytes.size() - kHeaderSize, " bytes present"));
  }
  if (d.header.payload_length > kMaxPayloadLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload length ", d.header.payload_length, " exceeds the limit"));
  }
  if (d.header.payload_length != payload_size) {
    return absl::InvalidArgumentError(absl::StrCat("payload length ", d.header.payload_length,
                                                   " does not match the ", payload_size,
                                                   " bytes received"));
  }
  d.body = bytes.subspan(kHeaderSize);
  return d;
}

void BodyWriter::Grow(size_t n) { bytes_.resize(std::max(2 * bytes_.size(), size_ + n)); }

absl::Status BodyReader::Truncated(size_t n, const char* what) {
  const size_t left = failed_ ? 0 : rest_.size();
  failed_ = true;
  return absl::InvalidArgumentError(
      absl::StrCat("body truncated: ", what, " needs ", n, " bytes, ", left, " left"));
}

absl::Status BodyReader::TooLong(size_t n, size_t max_length) {
  failed_ = true;
  return absl::InvalidArgumentError(
      absl::StrCat("string of ", n, " bytes exceeds its limit of ", max_length));
}

absl::StatusOr<std::vector<uint8_t>> BodyReader::Fixed(size_t length) {
  if (failed_ || rest_.size() < length) return Truncated(length, "fixed field");
  std::vector<uint8_t> out(rest_.begin(), rest_.begin() + static_cast<ptrdiff_t>(length));
  rest_.remove_prefix(length);
  return out;
}

}  // namespace axon::wire
