#include "daemon/rpc/deny_server.h"

#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "common/rpc/status_convert.h"

namespace axon::daemon::rpc {
namespace {

// One refused call: requested, then finished with its connection's status.
struct DeniedCall {
  grpc::GenericServerContext context;
  grpc::GenericServerAsyncReaderWriter stream{&context};
  bool finishing = false;
};

}  // namespace

DenyServer::DenyServer() {
  grpc::ServerBuilder builder;
  builder.RegisterAsyncGenericService(&service_);
  cq_ = builder.AddCompletionQueue();
  server_ = builder.BuildAndStart();
  thread_ = std::thread([this] { Serve(); });
}

DenyServer::~DenyServer() { Shutdown(); }

void DenyServer::AddConnection(int fd, absl::Status why) {
  {
    MutexLock lock(&mu_);
    reasons_[fd] = std::move(why);
  }
  grpc::AddInsecureChannelFromFd(server_.get(), fd);
}

void DenyServer::Serve() {
  auto request_next = [this] {
    auto* call = new DeniedCall();
    service_.RequestCall(&call->context, &call->stream, cq_.get(), cq_.get(), call);
  };
  request_next();
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) {
    auto* call = static_cast<DeniedCall*>(tag);
    if (call->finishing || !ok) {
      delete call;
      continue;
    }
    request_next();
    absl::Status reason = absl::PermissionDeniedError("permission denied");
    const std::string peer_name = call->context.peer();
    absl::string_view peer = peer_name;
    int fd = -1;
    if (absl::ConsumePrefix(&peer, "fd:") && absl::SimpleAtoi(peer, &fd)) {
      MutexLock lock(&mu_);
      if (auto it = reasons_.find(fd); it != reasons_.end()) reason = it->second;
    }
    call->finishing = true;
    call->stream.Finish(axon::rpc::ToGrpcStatus(reason), call);
  }
}

void DenyServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now());
  cq_->Shutdown();
  thread_.join();
}

}  // namespace axon::daemon::rpc
