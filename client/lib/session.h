// libaxon's connection to its daemon: the gRPC control channel (Attach,
// Detach) and the session socket (fd passing, liveness). Internal.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "axon/v1/control.grpc.pb.h"
#include "common/unique_fd.h"
#include "common/wire/session.h"

namespace axon::internal {

struct Session {
  std::unique_ptr<v1::Control::Stub> control;
  int timeout_ms = 10000;
  uint64_t id = 0;
  std::string token;
  std::string node_name;

  std::mutex mu;
  UniqueFd socket;  // guarded by mu; invalid once detached
  uint32_t next_request = 1;

  // One request and its reply over the session socket, `fds` attached.
  absl::StatusOr<wire::SessionReply> Call(wire::SessionRequest request, absl::Span<const int> fds);
  absl::Status Detach();
};

}  // namespace axon::internal
