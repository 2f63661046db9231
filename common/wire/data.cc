#include "common/wire/data.h"

#include "absl/strings/str_cat.h"
#include "common/wire/header.h"

namespace axon::wire {
namespace {

absl::Status NoTrailing(const BodyReader& reader, const char* what) {
  if (reader.remaining() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", reader.remaining(), " trailing bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<uint8_t> EncodeData(const DataBody& body) {
  BodyWriter w;
  w.U64(body.message_id);
  w.U64(body.tag);
  w.String(body.from);
  w.String(body.to);
  w.U64(body.total);
  w.U64(body.offset);
  w.U64(body.first_id);
  return w.Take();
}

absl::StatusOr<DataBody> DecodeData(absl::Span<const uint8_t> bytes) {
  BodyReader r(bytes);
  auto id = r.U64();
  auto tag = r.U64();
  auto from = r.String(kMaxEndpointName);
  auto to = r.String(kMaxEndpointName);
  if (!to.ok()) return absl::InvalidArgumentError(absl::StrCat("data: ", to.status().message()));
  auto total = r.U64();
  auto offset = r.U64();
  auto first_id = r.U64();
  if (!first_id.ok()) return absl::InvalidArgumentError("data: truncated");
  if (*total != 0 && *offset >= *total) {
    return absl::InvalidArgumentError("data: a chunk past the end of its message");
  }
  if (auto st = NoTrailing(r, "data"); !st.ok()) return st;
  return DataBody{*id, *tag, *std::move(from), *std::move(to), *total, *offset, *first_id};
}

std::vector<uint8_t> EncodeAck(uint64_t message_id, const absl::Status& status) {
  BodyWriter w;
  w.U64(message_id);
  w.U32(static_cast<uint32_t>(status.code()));
  const absl::string_view message = status.message();
  w.String(message.substr(0, kMaxStatusMessage));
  return w.Take();
}

absl::StatusOr<AckBody> DecodeAck(absl::Span<const uint8_t> bytes) {
  BodyReader r(bytes);
  auto id = r.U64();
  auto code = r.U32();
  auto message = r.String(kMaxStatusMessage);
  if (!message.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("data-ack: ", message.status().message()));
  }
  if (auto st = NoTrailing(r, "data-ack"); !st.ok()) return st;
  // An unknown code from a newer peer reads as UNKNOWN, never as OK.
  const auto status_code = *code <= static_cast<uint32_t>(absl::StatusCode::kUnauthenticated)
                               ? static_cast<absl::StatusCode>(*code)
                               : absl::StatusCode::kUnknown;
  return AckBody{*id, status_code, *std::move(message)};
}

std::vector<uint8_t> EncodeCancel(uint64_t message_id) {
  BodyWriter w;
  w.U64(message_id);
  return w.Take();
}

absl::StatusOr<uint64_t> DecodeCancel(absl::Span<const uint8_t> bytes) {
  BodyReader r(bytes);
  auto id = r.U64();
  if (!id.ok())
    return absl::InvalidArgumentError(absl::StrCat("data-cancel: ", id.status().message()));
  if (auto st = NoTrailing(r, "data-cancel"); !st.ok()) return st;
  return *id;
}

}  // namespace axon::wire
