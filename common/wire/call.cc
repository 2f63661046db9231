// The call frame codec (call.h). The encoder writes straight into the
// caller's span (registered memory the message leaves from) and the decoder
// reads the frame where it landed; neither allocates for up to
// kInlineTensors tensors. The decoder trusts nothing it reads: every length
// and count is checked against its limit and the bytes left before use.
#include "common/wire/call.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/wire/header.h"

namespace axon::wire {
namespace {

// magic, version, kind, flags, frame_length, call_id, timeout_ms.
constexpr size_t kFixedSize = 4 + 2 + 1 + 1 + 4 + 8 + 4;
// A tensor entry without its bus id, shape and strides: dtype (4), ndim,
// has_strides, device kind, memory kind, ordinal (4), the bus id's length,
// byte_offset, bytes, placement, inline_offset.
constexpr size_t kTensorFixedSize = 4 + 1 + 1 + 1 + 1 + 4 + 1 + 8 + 8 + 1 + 8;
constexpr size_t kMaxBusId = 31;
// absl::StatusCode::kUnauthenticated, the last code absl defines.
constexpr uint32_t kMaxStatusCode = 16;

template <typename... Args>
absl::Status Malformed(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat("malformed call frame: ", args...));
}

// A reply's message as it is sent: at most kMaxStatusMessage bytes, cut
// before a UTF-8 sequence rather than inside one (3 continuation bytes at
// most, so bytes that are not UTF-8 are cut at the limit give or take 3).
absl::string_view SentMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessage) return message;
  size_t n = kMaxStatusMessage;
  for (int i = 0; i < 3 && n > 0 && (static_cast<uint8_t>(message[n]) & 0xc0) == 0x80; ++i) --n;
  return message.substr(0, n);
}

size_t TensorEntrySize(const TensorDesc& desc) {
  const size_t dims = static_cast<size_t>(desc.ndim) * (desc.has_strides ? 2 : 1);
  return kTensorFixedSize + desc.device.pci_bus_id.size() + 8 * dims;
}

// CallFrameSize's checks and sum. Inline offsets are not checked: they are
// set after the frame is sized (InlineLayout needs the size).
absl::StatusOr<size_t> Measure(const CallFrame& frame) {
  size_t size = kFixedSize;
  switch (frame.kind) {
    case CallKind::kRequest:
      if (frame.method.empty()) return absl::InvalidArgumentError("a call needs a method name");
      if (frame.method.size() > kMaxMethodName) {
        return absl::InvalidArgumentError(absl::StrCat("call method name is ", frame.method.size(),
                                                       " bytes; at most ", kMaxMethodName));
      }
      size += 2 + frame.method.size() + 4 + 8;
      break;
    case CallKind::kReply:
      if (frame.code > kMaxStatusCode) {
        return absl::InvalidArgumentError(
            absl::StrCat("call reply status code ", frame.code, " is not an absl::StatusCode"));
      }
      size += 4 + 2 + SentMessage(frame.message).size();
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown call kind ", static_cast<int>(frame.kind)));
  }
  if (frame.call_id > kMaxCallId) {
    return absl::InvalidArgumentError(
        absl::StrCat("call id ", frame.call_id, " is above kMaxCallId (2^48 - 1)"));
  }
  if (frame.header.size() > kMaxCallHeader) {
    return absl::InvalidArgumentError(
        absl::StrCat("call header is ", frame.header.size(), " bytes; at most ", kMaxCallHeader));
  }
  size += 4 + frame.header.size() + 2;
  if (frame.tensors.size() > kMaxCallTensors) {
    return absl::InvalidArgumentError(absl::StrCat("a call carries at most ", kMaxCallTensors,
                                                   " tensors; this one has ",
                                                   frame.tensors.size()));
  }
  for (size_t i = 0; i < frame.tensors.size(); ++i) {
    const CallTensor& t = frame.tensors[i];
    const absl::StatusOr<uint64_t> bytes = TensorBytes(t.desc);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("call tensor ", i, ": ", bytes.status().message()));
    }
    if (*bytes != t.bytes) {
      return absl::InvalidArgumentError(absl::StrCat("call tensor ", i, " says ", t.bytes,
                                                     " bytes; ", DescribeTensor(t.desc), " has ",
                                                     *bytes));
    }
    if (t.placement != Placement::kInline && t.placement != Placement::kSeparate) {
      return absl::InvalidArgumentError(absl::StrCat("call tensor ", i, " has unknown placement ",
                                                     static_cast<int>(t.placement)));
    }
    size += TensorEntrySize(t.desc);
  }
  return size;
}

// Writes fields at a pointer the caller has made room behind: the frame was
// measured first, so no field needs a check of its own.
class Writer {
 public:
  explicit Writer(uint8_t* p) : p_(p) {}
  template <typename T>
  void Put(T v) {
    Store(p_, v);
    p_ += sizeof(T);
  }
  void Put(const void* bytes, size_t n) {
    if (n > 0) std::memcpy(p_, bytes, n);
    p_ += n;
  }

 private:
  uint8_t* p_;
};

// Reads fields up to a limit. The first read that does not fit fails the
// reader and every later read returns 0, so a run of fields is read and then
// checked once; status() says which field was cut short.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> bytes)
      : begin_(bytes.data()), p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  template <typename T>
  T Get(const char* what) {
    if (!Fits(sizeof(T), what)) return 0;
    const T v = Load<T>(p_);
    p_ += sizeof(T);
    return v;
  }
  // `n` bytes in place, or null (n == 0 gives a non-null pointer).
  const uint8_t* Take(size_t n, const char* what) {
    if (!Fits(n, what)) return nullptr;
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  // Reads stop `n` bytes from the start (n no more than the bytes given).
  // Never behind what was read already, where end - p would wrap.
  void Limit(size_t n) { end_ = begin_ + std::max(n, consumed()); }
  // Which tensor the reads are in, for status().
  void InTensor(size_t index) { tensor_ = static_cast<int>(index); }
  size_t consumed() const { return static_cast<size_t>(p_ - begin_); }
  bool ok() const { return what_ == nullptr; }
  absl::Status status() const {
    return Malformed("the frame ends inside ",
                     tensor_ < 0 ? "" : absl::StrCat("tensor ", tensor_, "'s "), what_, " (", need_,
                     " bytes needed, ", left_, " left)");
  }

 private:
  bool Fits(size_t n, const char* what) {
    if (what_ != nullptr) return false;
    const auto left = static_cast<size_t>(end_ - p_);
    if (left >= n) return true;
    what_ = what;
    need_ = n;
    left_ = left;
    return false;
  }

  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  int tensor_ = -1;
  const char* what_ = nullptr;  // the field that did not fit
  size_t need_ = 0;
  size_t left_ = 0;
};

absl::string_view View(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// One tensor entry, checked field by field and then as a whole; `end` is
// where the last inline tensor ended (the frame's end before the first).
absl::Status DecodeTensor(Reader& r, size_t index, uint32_t frame_length, size_t message_size,
                          uint64_t& end, CallTensor& t) {
  r.InTensor(index);
  const auto code = r.Get<uint8_t>("dtype code");
  const auto bits = r.Get<uint8_t>("dtype bits");
  const auto lanes = r.Get<uint16_t>("dtype lanes");
  const auto ndim = r.Get<uint8_t>("ndim");
  const auto has_strides = r.Get<uint8_t>("has_strides");
  const auto device_kind = r.Get<uint8_t>("device kind");
  const auto memory_kind = r.Get<uint8_t>("memory kind");
  const auto ordinal = r.Get<uint32_t>("device ordinal");
  const auto bus_id_length = r.Get<uint8_t>("PCI bus id length");
  if (!r.ok()) return r.status();
  if (ndim > kMaxDims) {
    return Malformed("tensor ", index, " has ", ndim, " dimensions; at most ", kMaxDims);
  }
  if (has_strides > 1) {
    return Malformed("tensor ", index, "'s has_strides is ", has_strides, ", neither 0 nor 1");
  }
  if (bus_id_length > kMaxBusId) {
    return Malformed("tensor ", index, "'s PCI bus id is ", bus_id_length, " bytes; at most ",
                     kMaxBusId);
  }
  const uint8_t* bus_id = r.Take(bus_id_length, "PCI bus id");
  TensorDesc& desc = t.desc;
  for (size_t d = 0; d < ndim; ++d) desc.shape[d] = static_cast<int64_t>(r.Get<uint64_t>("shape"));
  if (has_strides == 1) {
    for (size_t d = 0; d < ndim; ++d) {
      desc.strides[d] = static_cast<int64_t>(r.Get<uint64_t>("strides"));
    }
  }
  desc.byte_offset = r.Get<uint64_t>("byte_offset");
  t.bytes = r.Get<uint64_t>("byte count");
  const auto placement = r.Get<uint8_t>("placement");
  t.inline_offset = r.Get<uint64_t>("inline offset");
  if (!r.ok()) return r.status();

  // Any byte is a value of these enums (their underlying type is uint8_t);
  // ValidateTensorDesc refuses the ones that are not enumerators.
  desc.dtype = DType{static_cast<DTypeCode>(code), bits, lanes};
  desc.ndim = ndim;
  desc.has_strides = has_strides == 1;
  desc.device.kind = static_cast<DeviceKind>(device_kind);
  desc.device.ordinal = static_cast<int32_t>(ordinal);
  desc.device.pci_bus_id.assign(reinterpret_cast<const char*>(bus_id), bus_id_length);
  desc.memory = static_cast<MemoryKind>(memory_kind);
  const absl::StatusOr<uint64_t> bytes = TensorBytes(desc);
  if (!bytes.ok()) return Malformed("tensor ", index, ": ", bytes.status().message());
  if (*bytes != t.bytes) {
    return Malformed("tensor ", index, " says ", t.bytes, " bytes; ", DescribeTensor(desc), " has ",
                     *bytes);
  }

  switch (placement) {
    case static_cast<uint8_t>(Placement::kSeparate):
      t.placement = Placement::kSeparate;
      // One encoding per frame: an offset that means nothing is 0.
      if (t.inline_offset != 0) {
        return Malformed("tensor ", index, " travels separately but has inline offset ",
                         t.inline_offset);
      }
      return absl::OkStatus();
    case static_cast<uint8_t>(Placement::kInline):
      t.placement = Placement::kInline;
      break;
    default:
      return Malformed("tensor ", index, " has unknown placement ", placement);
  }
  const uint64_t offset = t.inline_offset;
  if (offset % kCallAlign != 0) {
    return Malformed("tensor ", index, "'s inline offset ", offset, " is not a multiple of ",
                     kCallAlign);
  }
  if (offset < end) {
    return Malformed(
        "tensor ", index, "'s inline offset ", offset,
        offset < frame_length ? " lies inside the frame" : " overlaps the inline tensor before it",
        " (which ends at ", end, ")");
  }
  if (offset > message_size || t.bytes > message_size - offset) {
    return Malformed("tensor ", index, "'s ", t.bytes, " inline bytes at offset ", offset,
                     " pass the end of the ", message_size, "-byte message");
  }
  end = offset + t.bytes;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<size_t> CallFrameSize(const CallFrame& frame) { return Measure(frame); }

absl::StatusOr<size_t> EncodeCallFrame(const CallFrame& frame, absl::Span<uint8_t> out) {
  const absl::StatusOr<size_t> size = Measure(frame);
  if (!size.ok()) return size.status();
  if (out.size() < *size) {
    return absl::InvalidArgumentError(
        absl::StrCat("a call frame of ", *size, " bytes does not fit in ", out.size()));
  }
  // What the decoder will check of the inline offsets, bar the message's
  // size (which only the caller knows), so that a bad layout is refused here
  // rather than by the receiver.
  uint64_t end = *size;
  for (size_t i = 0; i < frame.tensors.size(); ++i) {
    const CallTensor& t = frame.tensors[i];
    if (t.placement != Placement::kInline) continue;
    if (t.inline_offset % kCallAlign != 0) {
      return absl::InvalidArgumentError(absl::StrCat("call tensor ", i, "'s inline offset ",
                                                     t.inline_offset, " is not a multiple of ",
                                                     kCallAlign, " (InlineLayout sets it)"));
    }
    if (t.inline_offset < end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "call tensor ", i, "'s inline offset ", t.inline_offset,
          t.inline_offset < *size ? " lies inside the frame" : " overlaps the tensor before it",
          " (which ends at ", end, "; InlineLayout sets it)"));
    }
    if (__builtin_add_overflow(t.inline_offset, t.bytes, &end)) {
      return absl::InvalidArgumentError(absl::StrCat("call tensor ", i, "'s ", t.bytes,
                                                     " bytes at inline offset ", t.inline_offset,
                                                     " pass 2^64"));
    }
  }

  Writer w(out.data());
  w.Put(kCallMagic);
  w.Put(kCallVersion);
  w.Put(static_cast<uint8_t>(frame.kind));
  w.Put(frame.flags);
  w.Put(static_cast<uint32_t>(*size));
  w.Put(frame.call_id);
  w.Put(frame.timeout_ms);
  if (frame.kind == CallKind::kRequest) {
    w.Put(static_cast<uint16_t>(frame.method.size()));
    w.Put(frame.method.data(), frame.method.size());
    w.Put(frame.reply_room);
    w.Put(frame.reply_apart);
  } else {
    const absl::string_view message = SentMessage(frame.message);
    w.Put(frame.code);
    w.Put(static_cast<uint16_t>(message.size()));
    w.Put(message.data(), message.size());
  }
  w.Put(static_cast<uint32_t>(frame.header.size()));
  w.Put(frame.header.data(), frame.header.size());
  w.Put(static_cast<uint16_t>(frame.tensors.size()));
  for (const CallTensor& t : frame.tensors) {
    const TensorDesc& desc = t.desc;
    w.Put(static_cast<uint8_t>(desc.dtype.code));
    w.Put(desc.dtype.bits);
    w.Put(desc.dtype.lanes);
    w.Put(static_cast<uint8_t>(desc.ndim));
    w.Put(static_cast<uint8_t>(desc.has_strides ? 1 : 0));
    w.Put(static_cast<uint8_t>(desc.device.kind));
    w.Put(static_cast<uint8_t>(desc.memory));
    w.Put(static_cast<uint32_t>(desc.device.ordinal));
    w.Put(static_cast<uint8_t>(desc.device.pci_bus_id.size()));
    w.Put(desc.device.pci_bus_id.data(), desc.device.pci_bus_id.size());
    for (int32_t d = 0; d < desc.ndim; ++d) w.Put(static_cast<uint64_t>(desc.shape[d]));
    if (desc.has_strides) {
      for (int32_t d = 0; d < desc.ndim; ++d) w.Put(static_cast<uint64_t>(desc.strides[d]));
    }
    w.Put(desc.byte_offset);
    w.Put(t.bytes);
    w.Put(static_cast<uint8_t>(t.placement));
    w.Put(t.placement == Placement::kInline ? t.inline_offset : uint64_t{0});
  }
  return *size;
}

uint64_t InlineLayout(CallFrame& frame, size_t frame_size) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  constexpr uint64_t kMask = ~uint64_t{kCallAlign - 1};
  uint64_t cursor = frame_size;
  for (CallTensor& t : frame.tensors) {
    if (t.placement != Placement::kInline) continue;
    // Saturates instead of wrapping: EncodeCallFrame then refuses the
    // offsets, rather than a wrapped layout overlapping the frame.
    t.inline_offset =
        cursor > kMax - (kCallAlign - 1) ? kMax & kMask : (cursor + kCallAlign - 1) & kMask;
    if (__builtin_add_overflow(t.inline_offset, t.bytes, &cursor)) cursor = kMax;
  }
  return cursor;
}

absl::Status DecodeCallFrame(absl::Span<const uint8_t> message, CallFrame& out) {
  out.kind = CallKind::kRequest;
  out.flags = 0;
  out.frame_length = 0;
  out.call_id = 0;
  out.timeout_ms = 0;
  out.method = {};
  out.reply_room = 0;
  out.reply_apart = 0;
  out.code = 0;
  out.message = {};
  out.header = {};
  out.tensors.clear();

  Reader r(message);
  const auto magic = r.Get<uint32_t>("magic");
  if (!r.ok()) return r.status();
  if (magic != kCallMagic) {
    return Malformed("magic 0x", absl::Hex(magic, absl::kZeroPad8), " is not 'AXC1'");
  }
  const auto version = r.Get<uint16_t>("version");
  if (!r.ok()) return r.status();
  if (version != kCallVersion) {
    return Malformed("call frame version ", version, ", this build speaks ", kCallVersion);
  }
  const auto kind = r.Get<uint8_t>("kind");
  const auto flags = r.Get<uint8_t>("flags");
  const auto frame_length = r.Get<uint32_t>("frame_length");
  if (!r.ok()) return r.status();
  if (kind != static_cast<uint8_t>(CallKind::kRequest) &&
      kind != static_cast<uint8_t>(CallKind::kReply)) {
    return Malformed("unknown call kind ", kind);
  }
  if (frame_length > message.size()) {
    return Malformed("frame_length ", frame_length, " is past the end of the ", message.size(),
                     "-byte message");
  }
  if (frame_length < kFixedSize) {
    return Malformed("frame_length ", frame_length, " is shorter than the fixed ", kFixedSize,
                     " bytes every frame starts with");
  }
  r.Limit(frame_length);
  const auto call_id = r.Get<uint64_t>("call id");
  const auto timeout_ms = r.Get<uint32_t>("timeout");
  if (!r.ok()) return r.status();
  if (call_id > kMaxCallId) return Malformed("call id ", call_id, " is above 2^48 - 1");

  out.kind = static_cast<CallKind>(kind);
  if (out.kind == CallKind::kRequest) {
    const auto length = r.Get<uint16_t>("method name length");
    if (!r.ok()) return r.status();
    if (length == 0) return Malformed("empty method name");
    if (length > kMaxMethodName) {
      return Malformed("method name of ", length, " bytes; at most ", kMaxMethodName);
    }
    const uint8_t* method = r.Take(length, "method name");
    if (!r.ok()) return r.status();
    const auto reply_room = r.Get<uint32_t>("reply room");
    const auto reply_apart = r.Get<uint64_t>("reply tensors apart");
    if (!r.ok()) return r.status();
    out.method = View(method, length);
    out.reply_room = reply_room;
    out.reply_apart = reply_apart;
  } else {
    const auto code = r.Get<uint32_t>("status code");
    const auto length = r.Get<uint16_t>("status message length");
    if (!r.ok()) return r.status();
    if (code > kMaxStatusCode)
      return Malformed("status code ", code, " is not an absl::StatusCode");
    if (length > kMaxStatusMessage) {
      return Malformed("status message of ", length, " bytes; at most ", kMaxStatusMessage);
    }
    const uint8_t* text = r.Take(length, "status message");
    if (!r.ok()) return r.status();
    out.code = code;
    out.message = View(text, length);
  }

  const auto header_length = r.Get<uint32_t>("header length");
  if (!r.ok()) return r.status();
  if (header_length > kMaxCallHeader) {
    return Malformed("header of ", header_length, " bytes; at most ", kMaxCallHeader);
  }
  const uint8_t* header = r.Take(header_length, "header");
  const auto count = r.Get<uint16_t>("tensor count");
  if (!r.ok()) return r.status();
  if (count > kMaxCallTensors) {
    return Malformed("a call carries at most ", kMaxCallTensors, " tensors; this one has ", count);
  }
  out.header = absl::MakeConstSpan(header, header_length);

  uint64_t end = frame_length;  // inline tensors start after the frame
  for (size_t i = 0; i < count; ++i) {
    if (absl::Status st =
            DecodeTensor(r, i, frame_length, message.size(), end, out.tensors.emplace_back());
        !st.ok()) {
      return st;
    }
  }
  if (r.consumed() != frame_length) {
    return Malformed("frame_length is ", frame_length, " but the frame ends at byte ",
                     r.consumed());
  }
  out.flags = flags;
  out.frame_length = frame_length;
  out.call_id = call_id;
  out.timeout_ms = timeout_ms;
  return absl::OkStatus();
}

}  // namespace axon::wire
