#include "daemon/membership/member.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "axon/v1/membership.pb.h"
#include "common/net_address.h"

namespace axon::daemon {

std::string EncodeMember(const Member& member) {
  v1::NodeRecord record;
  record.set_name(member.name);
  record.set_address(member.address);
  record.set_wire_version(member.wire_version);
  record.set_capabilities(member.capabilities);
  record.set_incarnation(member.incarnation);
  record.set_started_unix_ms(absl::ToUnixMillis(member.started));
  for (const std::string& t : member.transports) record.add_transports(t);
  record.set_version(member.version);
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(record, &json);  // cannot fail for this type
  return json;
}

absl::StatusOr<Member> DecodeMember(absl::string_view json) {
  v1::NodeRecord record;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // fields a later version adds
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &record, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not a node record: ", parsed.ToString()));
  }
  if (record.name().empty()) return absl::InvalidArgumentError("node record without a name");
  if (auto address = ParseSocketAddress(record.address()); !address.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("node record of '", record.name(),
                                                   "': bad address: ", address.status().message()));
  }
  if (record.incarnation() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("node record of '", record.name(), "' without an incarnation"));
  }
  Member m;
  m.name = record.name();
  m.address = record.address();
  m.wire_version = record.wire_version();
  m.capabilities = record.capabilities();
  m.incarnation = record.incarnation();
  m.started = absl::FromUnixMillis(record.started_unix_ms());
  m.transports.assign(record.transports().begin(), record.transports().end());
  m.version = record.version();
  return m;
}

}  // namespace axon::daemon
