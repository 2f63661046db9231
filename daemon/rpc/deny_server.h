// A gRPC server with no services: every call on it is answered with the
// status given when its connection was accepted (PERMISSION_DENIED for the
// access policy, RESOURCE_EXHAUSTED when descriptors are short).
// Connections from callers the access policy refuses are handed here, so a
// refused caller gets a clear status instead of a dropped connection, and
// never reaches a real service.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/annotated_mutex.h"

namespace axon::daemon::rpc {

class DenyServer {
 public:
  // Must be built before the health and reflection plugins are enabled (see
  // ControlServer), so that this server carries neither.
  DenyServer();
  ~DenyServer();
  DenyServer(const DenyServer&) = delete;
  DenyServer& operator=(const DenyServer&) = delete;

  // Takes ownership of connected socket `fd` (non-blocking).
  void AddConnection(int fd, absl::Status why);
  void Shutdown();

 private:
  void Serve();

  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  Mutex mu_;
  std::unordered_map<int, absl::Status> reasons_ ABSL_GUARDED_BY(mu_);  // by fd
  std::thread thread_;
  bool shut_down_ = false;
};

}  // namespace axon::daemon::rpc
