#include "common/wire/session.h"

#include "absl/strings/str_cat.h"
#include "common/wire/header.h"

namespace axon::wire {
namespace {

constexpr size_t kMaxToken = 64;
constexpr size_t kMaxMessage = 1024;
constexpr size_t kMaxDevice = 64;
constexpr size_t kIpcHandleBytes = 64;

absl::Status Leftover(const BodyReader& r) {
  if (r.remaining() == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(r.remaining(), " stray bytes in session message"));
}

}  // namespace

std::vector<uint8_t> EncodeSessionRequest(const SessionRequest& request) {
  BodyWriter w;
  w.U16(static_cast<uint16_t>(request.type));
  w.U32(request.request_id);
  switch (request.type) {
    case SessionMessageType::kHello:
      w.U64(request.session_id);
      w.String(request.token);
      break;
    case SessionMessageType::kRegisterHost:
      w.U64(request.length);
      w.U64(request.region_id);
      break;
    case SessionMessageType::kSetupRings:
      w.U64(request.length);
      break;
    case SessionMessageType::kUnregister:
      w.U64(request.region_id);
      break;
    case SessionMessageType::kRegisterCuda:
      w.String(request.device);
      w.String(request.handle);
      w.U64(request.offset);
      w.U64(request.length);
      w.U64(request.region_id);
      break;
    case SessionMessageType::kRegisterCudaFd:
      w.String(request.device);
      w.U64(request.size);
      w.U64(request.offset);
      w.U64(request.length);
      w.U64(request.region_id);
      break;
    case SessionMessageType::kReply:
      break;
  }
  return w.Take();
}

absl::StatusOr<SessionRequest> DecodeSessionRequest(absl::Span<const uint8_t> bytes) {
  BodyReader r(bytes);
  SessionRequest request;
  auto type = r.U16();
  auto id = r.U32();
  if (!type.ok() || !id.ok()) return absl::InvalidArgumentError("session message truncated");
  request.request_id = *id;
  switch (*type) {
    case static_cast<uint16_t>(SessionMessageType::kHello): {
      request.type = SessionMessageType::kHello;
      auto session = r.U64();
      if (!session.ok()) return session.status();
      auto token = r.String(kMaxToken);
      if (!token.ok()) return token.status();
      request.session_id = *session;
      request.token = *std::move(token);
      break;
    }
    case static_cast<uint16_t>(SessionMessageType::kRegisterHost):
    case static_cast<uint16_t>(SessionMessageType::kSetupRings): {
      request.type = static_cast<SessionMessageType>(*type);
      auto length = r.U64();
      if (!length.ok()) return length.status();
      request.length = *length;
      if (request.type == SessionMessageType::kRegisterHost) {
        auto region = r.U64();
        if (!region.ok()) return region.status();
        request.region_id = *region;
      }
      break;
    }
    case static_cast<uint16_t>(SessionMessageType::kUnregister): {
      request.type = SessionMessageType::kUnregister;
      auto region = r.U64();
      if (!region.ok()) return region.status();
      request.region_id = *region;
      break;
    }
    case static_cast<uint16_t>(SessionMessageType::kRegisterCuda):
    case static_cast<uint16_t>(SessionMessageType::kRegisterCudaFd): {
      request.type = static_cast<SessionMessageType>(*type);
      auto device = r.String(kMaxDevice);
      if (!device.ok()) return device.status();
      request.device = *std::move(device);
      if (request.type == SessionMessageType::kRegisterCuda) {
        auto handle = r.String(kIpcHandleBytes);
        if (!handle.ok()) return handle.status();
        if (handle->size() != kIpcHandleBytes) {
          return absl::InvalidArgumentError(absl::StrCat("a CUDA IPC handle has ", kIpcHandleBytes,
                                                         " bytes, not ", handle->size()));
        }
        request.handle = *std::move(handle);
      } else {
        auto size = r.U64();
        if (!size.ok()) return size.status();
        request.size = *size;
      }
      auto offset = r.U64();
      auto length = r.U64();
      auto region = r.U64();
      if (!offset.ok() || !length.ok() || !region.ok())
        return absl::InvalidArgumentError("session message truncated");
      request.offset = *offset;
      request.length = *length;
      request.region_id = *region;
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown session message type ", *type));
  }
  if (auto st = Leftover(r); !st.ok()) return st;
  return request;
}

std::vector<uint8_t> EncodeSessionReply(const SessionReply& reply) {
  BodyWriter w;
  w.U16(static_cast<uint16_t>(SessionMessageType::kReply));
  w.U32(reply.request_id);
  w.U32(static_cast<uint32_t>(reply.code));
  w.String(reply.message.substr(0, kMaxMessage));
  w.U64(reply.value);
  return w.Take();
}

absl::StatusOr<SessionReply> DecodeSessionReply(absl::Span<const uint8_t> bytes) {
  BodyReader r(bytes);
  auto type = r.U16();
  if (!type.ok() || *type != static_cast<uint16_t>(SessionMessageType::kReply)) {
    return absl::InvalidArgumentError("expected a session reply");
  }
  SessionReply reply;
  auto id = r.U32();
  auto code = r.U32();
  if (!id.ok() || !code.ok()) return absl::InvalidArgumentError("session reply truncated");
  if (*code > static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)) {
    return absl::InvalidArgumentError(absl::StrCat("bad status code ", *code, " in reply"));
  }
  auto message = r.String(kMaxMessage);
  auto value = r.U64();
  if (!message.ok() || !value.ok()) return absl::InvalidArgumentError("session reply truncated");
  if (auto st = Leftover(r); !st.ok()) return st;
  reply.request_id = *id;
  reply.code = static_cast<absl::StatusCode>(*code);
  reply.message = *std::move(message);
  reply.value = *value;
  return reply;
}

}  // namespace axon::wire
