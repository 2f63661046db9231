// The window descriptor and operation list codecs (window.h).
#include "common/wire/window.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/wire/header.h"

namespace axon::wire {
namespace {

template <typename... Args>
absl::Status BadDescriptor(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat("malformed window descriptor: ", args...));
}

template <typename... Args>
absl::Status BadRma(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat("malformed RMA request: ", args...));
}

template <typename... Args>
absl::Status BadList(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat("malformed one-sided operation list: ", args...));
}

}  // namespace

std::string EncodeWindowDescriptor(const WindowDescriptor& window) {
  BodyWriter w(4 + 8 + 8 + kCapabilityBytes + 1 + 2 + window.node.size());
  w.U32(kWindowMagic);
  w.U64(window.id);
  w.U64(window.length);
  w.Fixed(window.capability);
  w.U8(window.access);
  w.String(window.node);
  const std::vector<uint8_t> bytes = w.Take();
  return std::string(bytes.begin(), bytes.end());
}

absl::StatusOr<WindowDescriptor> DecodeWindowDescriptor(absl::string_view bytes) {
  BodyReader r(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  auto magic = r.U32();
  if (!magic.ok()) return BadDescriptor(magic.status().message());
  if (*magic != kWindowMagic) return BadDescriptor("not a window descriptor (bad magic)");
  WindowDescriptor window;
  auto id = r.U64();
  auto length = r.U64();
  auto capability = r.Fixed(kCapabilityBytes);
  auto access = r.U8();
  auto node = r.String(kMaxNodeName);
  if (!node.ok()) return BadDescriptor(node.status().message());
  if (!id.ok() || !length.ok() || !capability.ok() || !access.ok()) {
    return BadDescriptor("truncated");
  }
  if (r.remaining() != 0) return BadDescriptor(r.remaining(), " bytes past its end");
  if (node->empty()) return BadDescriptor("no node name");
  if ((*access & (kWindowRead | kWindowWrite)) == 0 ||
      (*access & ~(kWindowRead | kWindowWrite | kWindowRma)) != 0) {
    return BadDescriptor("access ", static_cast<int>(*access), " is neither read nor write");
  }
  window.id = *id;
  window.length = *length;
  std::memcpy(window.capability.data(), capability->data(), kCapabilityBytes);
  window.access = *access;
  window.node = *std::move(node);
  return window;
}

void EncodeWindowOpList(const WindowOpList& list, absl::Span<const uint8_t> notify, uint8_t* out) {
  Store<uint32_t>(out, kWindowListMagic);
  Store<uint32_t>(out + 4, static_cast<uint32_t>(list.blocks.size()));
  Store<uint64_t>(out + 8, list.window);
  std::memcpy(out + 16, list.capability.data(), kCapabilityBytes);
  Store<uint64_t>(out + 32, list.notify_tag);
  Store<uint32_t>(out + 40, static_cast<uint32_t>(notify.size()));
  Store<uint32_t>(out + 44, (list.notify ? kListNotify : 0) | (list.rma ? kListRma : 0));
  Store<uint64_t>(out + 48, list.window_length);
  uint8_t* at = out + WindowOpList::kHeaderBytes;
  for (const WindowBlock& b : list.blocks) {
    Store<uint64_t>(at, b.region);
    Store<uint64_t>(at + 8, b.offset);
    Store<uint64_t>(at + 16, b.window_offset);
    Store<uint64_t>(at + 24, b.length);
    at += WindowOpList::kBlockBytes;
  }
  if (!notify.empty()) std::memcpy(at, notify.data(), notify.size());
}

absl::StatusOr<WindowOpList> DecodeWindowOpList(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < WindowOpList::kHeaderBytes) {
    return BadList(bytes.size(), " bytes, shorter than its header");
  }
  const uint8_t* p = bytes.data();
  if (Load<uint32_t>(p) != kWindowListMagic) return BadList("bad magic");
  const uint32_t count = Load<uint32_t>(p + 4);
  if (count == 0 || count > kMaxWindowBlocks) {
    return BadList(count, " blocks; 1 to ", kMaxWindowBlocks);
  }
  WindowOpList list;
  list.window = Load<uint64_t>(p + 8);
  std::memcpy(list.capability.data(), p + 16, kCapabilityBytes);
  list.notify_tag = Load<uint64_t>(p + 32);
  list.notify_length = Load<uint32_t>(p + 40);
  const uint32_t flags = Load<uint32_t>(p + 44);
  if ((flags & ~(kListNotify | kListRma)) != 0) return BadList("unknown flags ", flags);
  list.notify = (flags & kListNotify) != 0;
  list.rma = (flags & kListRma) != 0;
  list.window_length = Load<uint64_t>(p + 48);
  if (!list.notify && list.notify_length != 0) return BadList("notification bytes without one");
  if (list.notify_length > kMaxNotifyBytes) {
    return BadList("a notification of ", list.notify_length, " bytes; at most ", kMaxNotifyBytes);
  }
  if (bytes.size() != WindowOpListBytes(count, list.notify_length)) {
    return BadList(bytes.size(), " bytes for ", count, " blocks and ", list.notify_length,
                   " notification bytes");
  }
  list.blocks.resize(count);
  const uint8_t* at = p + WindowOpList::kHeaderBytes;
  for (WindowBlock& b : list.blocks) {
    b.region = Load<uint64_t>(at);
    b.offset = Load<uint64_t>(at + 8);
    b.window_offset = Load<uint64_t>(at + 16);
    b.length = Load<uint64_t>(at + 24);
    if (b.length == 0) return BadList("a block of 0 bytes");
    at += WindowOpList::kBlockBytes;
  }
  return list;
}

namespace {
size_t Padded(size_t n) { return (n + 7) / 8 * 8; }
}  // namespace

std::vector<uint8_t> EncodeRmaRequest(const RmaRequest& request) {
  size_t size = 16 + request.blocks.size() * 32;
  for (const auto& key : request.keys) size += 4 + Padded(key.size());
  if (request.notify) size += 16 + Padded(request.notify_bytes.size());
  std::vector<uint8_t> out(size, 0);
  uint8_t* p = out.data();
  Store<uint32_t>(p, kRmaMagic);
  Store<uint32_t>(p + 4, static_cast<uint32_t>(request.keys.size()));
  Store<uint32_t>(p + 8, static_cast<uint32_t>(request.blocks.size()));
  Store<uint32_t>(p + 12, request.notify ? kRmaNotify : 0);
  p += 16;
  for (const auto& key : request.keys) {
    Store<uint32_t>(p, static_cast<uint32_t>(key.size()));
    if (!key.empty()) std::memcpy(p + 4, key.data(), key.size());
    p += 4 + (key.size() + 7) / 8 * 8;
  }
  for (const RmaBlock& b : request.blocks) {
    Store<uint64_t>(p, b.window_offset);
    Store<uint64_t>(p + 8, b.address);
    Store<uint64_t>(p + 16, b.length);
    Store<uint32_t>(p + 24, b.key);
    p += 32;
  }
  if (request.notify) {
    Store<uint64_t>(p, request.notify_tag);
    Store<uint32_t>(p + 8, static_cast<uint32_t>(request.notify_bytes.size()));
    if (!request.notify_bytes.empty()) {
      std::memcpy(p + 16, request.notify_bytes.data(), request.notify_bytes.size());
    }
  }
  return out;
}

absl::StatusOr<RmaRequest> DecodeRmaRequest(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < 16) return BadRma(bytes.size(), " bytes, shorter than its header");
  const uint8_t* p = bytes.data();
  const uint8_t* end = p + bytes.size();
  if (Load<uint32_t>(p) != kRmaMagic) return BadRma("bad magic");
  const uint32_t keys = Load<uint32_t>(p + 4);
  const uint32_t blocks = Load<uint32_t>(p + 8);
  if (keys == 0 || keys > kMaxRmaKeys) return BadRma(keys, " keys; 1 to ", kMaxRmaKeys);
  if (blocks == 0 || blocks > kMaxRmaBlocks) {
    return BadRma(blocks, " blocks; 1 to ", kMaxRmaBlocks);
  }
  const uint32_t flags = Load<uint32_t>(p + 12);
  if ((flags & ~kRmaNotify) != 0) return BadRma("unknown flags ", flags);
  p += 16;
  RmaRequest request;
  request.keys.reserve(keys);
  for (uint32_t k = 0; k < keys; ++k) {
    if (end - p < 4) return BadRma("truncated in key ", k);
    const uint32_t length = Load<uint32_t>(p);
    if (length == 0 || length > kMaxRmaKeyBytes) {
      return BadRma("key ", k, " of ", length, " bytes; 1 to ", kMaxRmaKeyBytes);
    }
    const size_t padded = (size_t{length} + 7) / 8 * 8;
    if (static_cast<size_t>(end - p - 4) < padded) return BadRma("truncated in key ", k);
    for (size_t i = length; i < padded; ++i) {
      if (p[4 + i] != 0) return BadRma("key ", k, " has nonzero padding");
    }
    request.keys.emplace_back(p + 4, p + 4 + length);
    p += 4 + padded;
  }
  if (static_cast<size_t>(end - p) < size_t{blocks} * 32) {
    return BadRma(end - p, " bytes for ", blocks, " blocks of 32");
  }
  request.blocks.reserve(blocks);
  for (uint32_t i = 0; i < blocks; ++i, p += 32) {
    RmaBlock b{.window_offset = Load<uint64_t>(p),
               .address = Load<uint64_t>(p + 8),
               .length = Load<uint64_t>(p + 16),
               .key = Load<uint32_t>(p + 24)};
    if (Load<uint32_t>(p + 28) != 0) return BadRma("reserved bits set in block ", i);
    if (b.key >= keys) return BadRma("block ", i, " names key ", b.key, " of ", keys);
    if (b.length == 0 || b.address + b.length < b.address) {
      return BadRma("block ", i, " is empty or wraps the address space");
    }
    request.blocks.push_back(b);
  }
  if ((flags & kRmaNotify) != 0) {
    if (end - p < 16) return BadRma("truncated in its notification");
    request.notify = true;
    request.notify_tag = Load<uint64_t>(p);
    const uint32_t length = Load<uint32_t>(p + 8);
    if (Load<uint32_t>(p + 12) != 0) return BadRma("reserved bits set in its notification");
    if (length > kMaxNotifyBytes) {
      return BadRma("a notification of ", length, " bytes; at most ", kMaxNotifyBytes);
    }
    p += 16;
    if (static_cast<size_t>(end - p) != Padded(length)) {
      return BadRma(end - p, " bytes for a notification of ", length);
    }
    for (size_t i = length; i < Padded(length); ++i) {
      if (p[i] != 0) return BadRma("the notification has nonzero padding");
    }
    request.notify_bytes.assign(reinterpret_cast<const char*>(p), length);
    p += Padded(length);
  }
  if (p != end) return BadRma(end - p, " bytes past its end");
  return request;
}

}  // namespace axon::wire
