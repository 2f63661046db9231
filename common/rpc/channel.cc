#include "common/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

namespace axon::rpc {

std::shared_ptr<grpc::Channel> MakeControlChannel(const std::string& socket_path) {
  grpc::ChannelArguments args;
  // A local daemon that went away should be retried quickly, not after
  // gRPC's default 1-120 s backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
}

}  // namespace axon::rpc
