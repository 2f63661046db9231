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
  // Each channel its own connection: by default gRPC shares subchannels
  // between channels to one target, so a client attaching to a restarted
  // daemon got the dead daemon's connection and failed with "Broken pipe".
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
}

}  // namespace axon::rpc
