#include "daemon/session/session_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/process_info.h"

namespace axon::daemon {

absl::StatusOr<std::unique_ptr<SessionSocketServer>> SessionSocketServer::Start(
    const std::string& path, const ListenOptions& options, AccessPolicy policy,
    SessionManager& sessions, RingsAttacher attach_rings, asio::io_context& io,
    const FdBudget* fds) {
  std::unique_ptr<SessionSocketServer> server(
      new SessionSocketServer(sessions, std::move(attach_rings), io));
  ListenOptions seqpacket = options;
  seqpacket.type = SOCK_SEQPACKET;
  SessionSocketServer* raw = server.get();
  auto listener = UnixListener::Start(
      path, seqpacket, std::move(policy), "session socket", io,
      [raw](AcceptedConnection c) { raw->OnConnection(std::move(c)); }, fds);
  if (!listener.ok()) return listener.status();
  server->listener_ = *std::move(listener);
  return server;
}

SessionSocketServer::~SessionSocketServer() { Shutdown(); }

void SessionSocketServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (listener_) listener_->Close();
  std::error_code ignored;
  for (const auto& conn : connections_) conn->socket.close(ignored);
  connections_.clear();
}

void SessionSocketServer::OnConnection(AcceptedConnection connection) {
  if (!connection.allowed.ok()) {
    wire::SessionReply reply{.code = connection.allowed.code(),
                             .message = std::string(connection.allowed.message())};
    (void)SendMessage(connection.fd.get(), wire::EncodeSessionReply(reply));
    return;  // the fd closes here
  }
  auto conn = std::make_shared<Connection>(io_, connection.fd.Release());
  conn->creds = connection.creds;
  connections_.insert(conn);
  AwaitMessage(conn);
  // A connection that never says hello holds a descriptor: not for long.
  const absl::Duration timeout = sessions_.limits().socket_timeout;
  auto timer = std::make_shared<asio::steady_timer>(io_, absl::ToChronoNanoseconds(timeout));
  std::weak_ptr<Connection> weak = conn;
  timer->async_wait([this, weak, timer, timeout](std::error_code ec) {
    auto silent = weak.lock();
    if (ec || shut_down_ || !silent || silent->session_id != 0 || !connections_.contains(silent)) {
      return;
    }
    Drop(silent, absl::StrCat("no hello within ", absl::ToInt64Milliseconds(timeout),
                              " ms (sessions.socket_timeout_ms)"));
  });
}

void SessionSocketServer::AwaitMessage(const std::shared_ptr<Connection>& conn) {
  conn->socket.async_wait(asio::posix::stream_descriptor::wait_read,
                          [this, conn](std::error_code ec) {
                            if (ec || shut_down_) return;
                            if (ReadMessages(conn)) AwaitMessage(conn);
                          });
}

bool SessionSocketServer::ReadMessages(const std::shared_ptr<Connection>& conn) {
  while (true) {
    auto message = ReceiveMessage(conn->socket.native_handle());
    if (!message.ok()) {
      if (IsWouldBlock(message.status())) return true;
      Drop(conn, message.status().message());
      return false;
    }
    if (message->eof) {
      Drop(conn, "the client closed its session socket");
      return false;
    }
    auto request = wire::DecodeSessionRequest(message->bytes);
    if (!request.ok()) {
      Drop(conn, absl::StrCat("malformed message: ", request.status().message()));
      return false;
    }
    const wire::SessionReply reply = Handle(*conn, *request, std::move(message->fds));
    if (auto st = SendMessage(conn->socket.native_handle(), wire::EncodeSessionReply(reply));
        !st.ok()) {
      Drop(conn, absl::StrCat("cannot answer: ", st.message()));
      return false;
    }
    if (conn->session_id == 0 && !reply.status().ok()) {
      Drop(conn, reply.message);  // a refused hello ends the connection
      return false;
    }
  }
}

wire::SessionReply SessionSocketServer::Handle(Connection& conn,
                                               const wire::SessionRequest& request,
                                               std::vector<UniqueFd> fds) {
  wire::SessionReply reply{.request_id = request.request_id};
  auto fail = [&](const absl::Status& st) {
    reply.code = st.code();
    reply.message = std::string(st.message());
    return reply;
  };
  if (conn.session_id == 0) {
    if (request.type != wire::SessionMessageType::kHello) {
      return fail(absl::FailedPreconditionError("the first message must be a hello"));
    }
    if (auto st = sessions_.BindSocket(request.session_id, request.token, conn.creds); !st.ok()) {
      return fail(st);
    }
    conn.session_id = request.session_id;
    spdlog::debug("session {}: session socket bound (pid {})", conn.session_id, conn.creds.pid);
    return reply;
  }
  switch (request.type) {
    case wire::SessionMessageType::kHello:
      return fail(absl::FailedPreconditionError("hello sent twice"));
    case wire::SessionMessageType::kRegisterHost: {
      if (fds.size() != 1) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat("register needs exactly one memfd, got ", fds.size())));
      }
      auto region = sessions_.RegisterHost(conn.session_id, std::move(fds[0]), request.length,
                                           request.region_id);
      if (!region.ok()) return fail(region.status());
      reply.value = *region;
      return reply;
    }
    case wire::SessionMessageType::kRegisterCuda:
    case wire::SessionMessageType::kRegisterCudaFd: {
      const bool vmm = request.type == wire::SessionMessageType::kRegisterCudaFd;
      if (fds.size() != (vmm ? 1u : 0u)) {
        return fail(absl::InvalidArgumentError(
            absl::StrCat(vmm ? "a VMM registration needs exactly one fd, got "
                             : "a CUDA IPC registration takes no fds, got ",
                         fds.size())));
      }
      auto region = sessions_.RegisterCuda(conn.session_id,
                                           {.device = request.device,
                                            .handle = request.handle,
                                            .size = request.size,
                                            .offset = request.offset,
                                            .length = request.length,
                                            .wanted = request.region_id},
                                           vmm ? std::move(fds[0]) : UniqueFd());
      if (!region.ok()) return fail(region.status());
      reply.value = *region;
      return reply;
    }
    case wire::SessionMessageType::kUnregister:
      if (auto st = sessions_.Unregister(conn.session_id, request.region_id); !st.ok()) {
        return fail(st);
      }
      return reply;
    case wire::SessionMessageType::kSetupRings: {
      if (fds.size() != 3) {
        return fail(absl::InvalidArgumentError(absl::StrCat(
            "setting up rings needs a memfd and two eventfds, got ", fds.size(), " fds")));
      }
      auto memory = HostRegion::Map(std::move(fds[0]), request.length);
      if (!memory.ok()) return fail(memory.status());
      if (auto st = attach_rings_(conn.session_id, *std::move(memory), std::move(fds[1]),
                                  std::move(fds[2]));
          !st.ok()) {
        return fail(st);
      }
      return reply;
    }
    case wire::SessionMessageType::kReply:
      break;
  }
  return fail(absl::InvalidArgumentError("unexpected message"));
}

void SessionSocketServer::Drop(const std::shared_ptr<Connection>& conn, absl::string_view why) {
  std::error_code ignored;
  conn->socket.close(ignored);
  connections_.erase(conn);
  if (conn->session_id != 0) sessions_.Close(conn->session_id, why);
}

}  // namespace axon::daemon
