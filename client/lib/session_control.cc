// libaxon, part: the session's control side (session.h). Attaching over
// gRPC and saying hello on the session socket, endpoints, detaching, and
// re-attaching to a daemon restarted under the same socket.
#include <grpcpp/client_context.h>
#include <sys/socket.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/lib/session.h"
#include "common/log.h"
#include "common/rpc/status_convert.h"
#include "common/unix_socket.h"
#include "common/version.h"

namespace axon::internal {
namespace {

void SetDeadline(grpc::ClientContext& context, int timeout_ms) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

}  // namespace

absl::StatusOr<UniqueFd> Session::AttachLocked() {
  v1::AttachRequest request;
  request.set_client_name(client_name);
  request.set_placement(placement);
  request.set_protocol_version(kControlProtocolVersion);
  v1::AttachResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  if (grpc::Status st = control->Attach(&context, request, &response); !st.ok()) {
    absl::Status status = rpc::FromGrpcStatus(st);
    return absl::Status(status.code(),
                        absl::StrCat("attach to axond at ", socket_path, ": ", status.message()));
  }
  auto connected = ConnectUnixSocket(response.session_socket(), SOCK_SEQPACKET);
  if (!connected.ok()) return connected.status();  // the daemon drops the session unhelloed
  UniqueFd old = std::exchange(socket, *std::move(connected));
  id = response.session_id();
  token = response.token();
  quiet_sends = response.quiet_sends();
  if (node_name.empty()) node_name = response.node_name();  // read unlocked: set once
  auto reply =
      CallLocked({.type = wire::SessionMessageType::kHello, .session_id = id, .token = token}, {});
  if (!reply.ok() || !reply->status().ok()) {
    absl::Status st = reply.ok() ? reply->status() : reply.status();
    socket = std::move(old);
    return absl::Status(st.code(), absl::StrCat("session socket: ", st.message()));
  }
  return old;
}

absl::Status Session::Open() {
  std::lock_guard<std::mutex> lock(mu);
  if (auto attached = AttachLocked(); !attached.ok()) return attached.status();
  if (auto st = SetupRingsLocked(); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("setting up the rings: ", st.message()));
  }
  hangup_fd = socket.get();
  return absl::OkStatus();
}

std::pair<uint64_t, std::string> Session::Credentials() {
  std::lock_guard<std::mutex> lock(mu);
  return {id, token};
}

absl::StatusOr<std::string> Session::BindEndpoint(const std::string& name) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  if (daemon_gone) return GoneStatus();
  auto address = BindLocked(name);
  if (address.ok() && keep_state) restorable.endpoints.insert(name);
  return address;
}

absl::StatusOr<std::string> Session::BindLocked(const std::string& name) {
  v1::BindEndpointRequest request;
  request.set_session_id(id);
  request.set_token(token);
  request.set_name(name);
  v1::BindEndpointResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  if (grpc::Status st = control->BindEndpoint(&context, request, &response); !st.ok()) {
    return rpc::FromGrpcStatus(st);
  }
  return response.address();
}

absl::Status Session::UnbindEndpoint(const std::string& name) {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  const bool known = restorable.endpoints.erase(name) > 0;
  if (daemon_gone) return known ? absl::OkStatus() : GoneStatus();  // it went with the daemon
  v1::UnbindEndpointRequest request;
  request.set_session_id(id);
  request.set_token(token);
  request.set_name(name);
  v1::UnbindEndpointResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  return rpc::FromGrpcStatus(control->UnbindEndpoint(&context, request, &response));
}

absl::Status Session::ReportCalls(v1::ReportCallsRequest request) {
  if (auto st = NotForked(); !st.ok()) return st;
  auto [session_id, session_token] = Credentials();
  request.set_session_id(session_id);
  request.set_token(session_token);
  v1::ReportCallsResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  return rpc::FromGrpcStatus(control->ReportCalls(&context, request, &response));
}

absl::StatusOr<std::string> Session::Expose(v1::ExposeRequest request) {
  if (auto st = NotForked(); !st.ok()) return st;
  auto [session_id, session_token] = Credentials();
  request.set_session_id(session_id);
  request.set_token(session_token);
  v1::ExposeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  if (grpc::Status st = control->Expose(&context, request, &response); !st.ok()) {
    return rpc::FromGrpcStatus(st);
  }
  return response.window_descriptor();
}

absl::Status Session::Unexpose(uint64_t window_id) {
  if (auto st = NotForked(); !st.ok()) return st;
  auto [session_id, session_token] = Credentials();
  v1::UnexposeRequest request;
  request.set_session_id(session_id);
  request.set_token(session_token);
  request.set_window_id(window_id);
  v1::UnexposeResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  return rpc::FromGrpcStatus(control->Unexpose(&context, request, &response));
}

absl::Status Session::Detach() {
  if (auto st = NotForked(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu);
  if (!socket.valid()) return absl::OkStatus();
  {
    std::lock_guard<AdaptiveMutex> ring(ring_mu);
    detached = true;
    reconnecting = false;
    hangup_fd = -1;
    drained.notify_all();  // what waits for a reconnection waits no more
  }
  socket.Reset();  // closing it alone would end the session; Detach says so explicitly
  if (daemon_gone) return absl::OkStatus();  // nothing left to detach from
  v1::DetachRequest request;
  request.set_session_id(id);
  request.set_token(token);
  v1::DetachResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  absl::Status st = rpc::FromGrpcStatus(control->Detach(&context, request, &response));
  // The socket's close may already have ended the session.
  return st.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : st;
}

absl::Status Session::Reattach() {
  std::lock_guard<std::mutex> lock(mu);
  if (detached) return absl::CancelledError("the session is detached");
  auto old_socket = AttachLocked();
  if (!old_socket.ok()) return old_socket.status();
  const auto gone_again = [&](absl::Status st) {
    std::lock_guard<AdaptiveMutex> ring(ring_mu);
    DaemonGone();
    return st;
  };
  std::vector<std::string> problems;
  // Memory first, under the ids the client's Buffers hold.
  for (auto& [region_id, region] : restorable.regions) {
    const int fd = region.fd.get();
    auto reply =
        CallLocked(region.request, fd >= 0 ? absl::MakeConstSpan(&fd, 1) : absl::Span<const int>());
    if (!reply.ok()) return reply.status();  // the new daemon went away too
    if (!reply->status().ok()) {
      problems.push_back(absl::StrCat("region ", region_id, ": ", reply->status().message()));
    }
  }
  if (auto st = SetupRingsLocked(); !st.ok()) return st;
  {
    std::lock_guard<AdaptiveMutex> ring(ring_mu);
    if (retired) retired->socket = *std::move(old_socket);
    hangup_fd = socket.get();
    replaying = true;
    daemon_gone = false;
  }
  if (auto st = RestoreLocked(problems); !st.ok()) return gone_again(st);
  if (problems.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("re-attached, but could not restore ", absl::StrJoin(problems, "; ")));
}

absl::Status Session::RestoreLocked(std::vector<std::string>& problems) {
  uint64_t area_op = 0, nop = 0;
  {
    std::lock_guard<AdaptiveMutex> ring(ring_mu);
    const auto push = [&](wire::Submission s) {
      s.op_id = next_op++;
      return PushLocked(s).ok() ? s.op_id : 0;
    };
    // The receive area, less the slots the client still holds: nothing may
    // land there. Then a no-op, whose completion says both were done before
    // any endpoint is bound (and so before any message can come).
    if (area_region != 0) {
      area_op = push({.op = static_cast<uint16_t>(wire::RingOp::kSetArea),
                      .region = area_region,
                      .slot_size = area_slot_size});
      for (uint64_t slot : held_slots) {
        push({.op = static_cast<uint16_t>(wire::RingOp::kClaim), .slot = slot});
      }
    }
    nop = push({.op = static_cast<uint16_t>(wire::RingOp::kNop)});
    RingDaemon();
  }
  if (area_op != 0) {
    auto set = WaitFor(area_op, timeout_ms);
    if (!set.ok()) return set.status();
    if (set->code != 0) {
      problems.push_back(absl::StrCat("the receive area: ", wire::NameField(set->message)));
    }
  }
  if (auto done = WaitFor(nop, timeout_ms); !done.ok()) return done.status();
  for (const std::string& name : restorable.endpoints) {
    if (auto bound = BindLocked(name); !bound.ok()) {
      if (bound.status().code() == absl::StatusCode::kUnavailable) return bound.status();
      problems.push_back(absl::StrCat("endpoint ", name, ": ", bound.status().message()));
    }
  }
  std::lock_guard<AdaptiveMutex> ring(ring_mu);
  for (const auto& [op_id, receive] : kept) {
    if (auto st = PushLocked(receive); !st.ok()) return st;
  }
  RingDaemon();
  replaying = false;
  drained.notify_all();
  return absl::OkStatus();
}

}  // namespace axon::internal
