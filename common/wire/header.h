// The versioned header that starts every daemon-to-daemon message, and the
// bounds-checked reader and writer for the bodies that follow it. Defined
// once here; the decoder trusts no length or count it is given.
//
// Layout (little endian), kHeaderSize bytes:
//   u32 magic 'AXN1' | u16 version | u16 type | u32 flags | u32 body_length |
//   u64 payload_length | u64 sequence
// followed by body_length bytes of type-specific body. The payload (tensor
// bytes) travels separately, as the active message's data.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace axon::wire {

inline constexpr uint32_t kMagic = 0x314e5841;  // "AXN1" in little endian
// 2: GPU sends go in 32 MiB chunks (1: 8 MiB); the receiver sizes chunks by
// its own RemotePath::kChunk, so the two must not mix.
// 3: kData may carry a CUDA IPC handle instead of the bytes (DataBody::handle),
// answered by kDataHandleAnswer when asked or when it cannot be opened;
// kDataHandleClosed.
// 4: delivered messages are acknowledged in batches (kDataAcks).
// 5: a connection both sides found idle is closed by agreement (kIdleClose).
// 6: kData may carry a one-sided operation's window section (DataBody::window).
// 7: window sections may be RMA requests (kRmaWrite, kRmaRead).
// 8: Hello lists the worker addresses of the sender's engine shards 1..N-1;
// messages between sessions of shard k go on shard k's own data endpoints.
inline constexpr uint16_t kVersion = 8;
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kMaxBodyLength = 64 * 1024;
inline constexpr uint64_t kMaxPayloadLength = uint64_t{1} << 40;  // 1 TiB

enum class MessageType : uint16_t {
  kHello = 1,      // handshake: who I am, my nonce (and my proof, when answering)
  kHelloAuth = 2,  // handshake: the dialer's proof
  kReject = 3,     // handshake refused, with the reason
  kPing = 4,       // keepalive and `axonctl ping`; payload echoed back
  kPong = 5,
  kData = 6,               // one message for an endpoint: DataBody, the bytes as payload
  kDataAck = 7,            // the receiving daemon's verdict on one kData
  kDataCancel = 8,         // the sender gives up on one kData not yet delivered
  kDataBind = 9,           // first frame on a data endpoint: the receiver's handshake nonce
  kDataHandleAnswer = 10,  // a kData by handle opened (a probe's answer) or refused: AckBody
  kDataHandleClosed = 11,  // the sender let go of an IPC handle it had sent
  kDataAcks = 12,          // several kData delivered (OK): their ids
  kIdleClose = 13,         // close an idle connection: asked, agreed or declined (IdleClose)
};
inline constexpr uint16_t kMaxMessageType = 13;

// kIdleClose's one-byte body.
enum class IdleClose : uint8_t { kAsk = 1, kAgree = 2, kDecline = 3 };

const char* MessageTypeName(MessageType type);

struct Header {
  uint16_t version = kVersion;
  MessageType type = MessageType::kPing;
  uint32_t flags = 0;
  uint32_t body_length = 0;
  uint64_t payload_length = 0;
  uint64_t sequence = 0;
};

// A decoded message: its header and a view of its body inside the input.
struct Decoded {
  Header header;
  absl::Span<const uint8_t> body;
};

// Header followed by body.
std::vector<uint8_t> Encode(const Header& header, absl::Span<const uint8_t> body);
// The same, in `body`'s own storage: BodyWriter leaves room for the header,
// so a body it wrote takes no second allocation.
std::vector<uint8_t> Frame(const Header& header, std::vector<uint8_t> body);
// The same into `out`, replacing what it held (its storage is reused).
void FrameInto(const Header& header, absl::Span<const uint8_t> body, std::vector<uint8_t>& out);
// Sizes `out` for a frame of a `body_size`-byte body (its storage reused),
// writes the header, and returns where the body goes, for the caller to
// write it in place.
uint8_t* FrameRoom(const Header& header, size_t body_size, std::vector<uint8_t>& out);

// Checks magic, version, type, and every length against the bytes present.
// `payload_size` is the size of the data that came with the message; it must
// equal header.payload_length.
absl::StatusOr<Decoded> Decode(absl::Span<const uint8_t> bytes, uint64_t payload_size);

// A little-endian field at `p`: one copy where the host is little-endian too.
template <typename T>
void Store(uint8_t* p, T v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, sizeof(T));
  } else {
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}

// Appends little-endian fields to a body. Inline, and each field one bounds
// check and a copy (every data frame is encoded with it): the buffer is
// sized up front to `expected` and grows only past it.
class BodyWriter {
 public:
  // `expected`: the bytes it will likely hold. Room for a header in front
  // besides (see Frame).
  explicit BodyWriter(size_t expected = 64) {
    bytes_.reserve(kHeaderSize + expected);
    bytes_.resize(expected);
  }
  // Writes into `reuse`'s storage (emptied first): a buffer kept from one
  // message to the next takes no allocation.
  BodyWriter(std::vector<uint8_t> reuse, size_t expected) : bytes_(std::move(reuse)) {
    bytes_.reserve(kHeaderSize + expected);
    bytes_.resize(expected);
  }
  void U8(uint8_t v) { *Room(1) = v; }
  void U16(uint16_t v) { Store(Room(sizeof(v)), v); }
  void U32(uint32_t v) { Store(Room(sizeof(v)), v); }
  void U64(uint64_t v) { Store(Room(sizeof(v)), v); }
  // u16 length, then the bytes (at most 65535 of them).
  void String(absl::string_view s) {
    const size_t n = std::min<size_t>(s.size(), 0xffff);
    U16(static_cast<uint16_t>(n));
    if (n > 0) std::memcpy(Room(n), s.data(), n);
  }
  // Exactly `s.size()` bytes, no length (fixed-size fields such as nonces).
  void Fixed(absl::Span<const uint8_t> s) {
    if (!s.empty()) std::memcpy(Room(s.size()), s.data(), s.size());
  }
  std::vector<uint8_t> Take() {
    bytes_.resize(size_);
    size_ = 0;
    return std::move(bytes_);
  }
  absl::Span<const uint8_t> bytes() const { return {bytes_.data(), size_}; }

 private:
  // The next `n` bytes, growing the buffer if they do not fit.
  uint8_t* Room(size_t n) {
    if (bytes_.size() - size_ < n) Grow(n);
    uint8_t* at = bytes_.data() + size_;
    size_ += n;
    return at;
  }
  void Grow(size_t n);

  std::vector<uint8_t> bytes_;  // [0, size_) written; the rest is room
  size_t size_ = 0;
};

// Reads what BodyWriter wrote; every read checks the bytes left first, and a
// failed read leaves the reader failed (all later reads fail too).
// A little-endian field at `p`: one copy where the host is little-endian too.
template <typename T>
T Load(const uint8_t* p) {
  T v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof(T));
  } else {
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(p[i]) << (8 * i));
  }
  return v;
}

// The fixed-size reads are inline (a data frame has a dozen fields, and
// every message is decoded); only a failure leaves the fast path.
class BodyReader {
 public:
  explicit BodyReader(absl::Span<const uint8_t> body) : rest_(body) {}
  absl::StatusOr<uint8_t> U8() { return Read<uint8_t>("u8"); }
  absl::StatusOr<uint16_t> U16() { return Read<uint16_t>("u16"); }
  absl::StatusOr<uint32_t> U32() { return Read<uint32_t>("u32"); }
  absl::StatusOr<uint64_t> U64() { return Read<uint64_t>("u64"); }
  // A string of at most `max_length` bytes.
  absl::StatusOr<std::string> String(size_t max_length) {
    auto s = StringView(max_length);
    if (!s.ok()) return s.status();
    return std::string(*s);
  }
  // The same, as a view of the body's bytes.
  absl::StatusOr<absl::string_view> StringView(size_t max_length) {
    auto n = U16();
    if (!n.ok()) return n.status();
    if (*n > max_length) return TooLong(*n, max_length);
    if (rest_.size() < *n) return Truncated(*n, "string");
    const absl::string_view s(reinterpret_cast<const char*>(rest_.data()), *n);
    rest_.remove_prefix(*n);
    return s;
  }
  absl::StatusOr<std::vector<uint8_t>> Fixed(size_t length);
  size_t remaining() const { return rest_.size(); }

 private:
  template <typename T>
  absl::StatusOr<T> Read(const char* what) {
    if (failed_ || rest_.size() < sizeof(T)) return Truncated(sizeof(T), what);
    const T v = Load<T>(rest_.data());
    rest_.remove_prefix(sizeof(T));
    return v;
  }
  // Both leave the reader failed.
  absl::Status Truncated(size_t n, const char* what);
  absl::Status TooLong(size_t n, size_t max_length);
  absl::Span<const uint8_t> rest_;
  bool failed_ = false;
};

}  // namespace axon::wire
