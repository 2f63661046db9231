// Client-side gRPC channel to a local axond over its Unix control socket.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

namespace axon::rpc {

// A channel to the daemon listening on `socket_path`. Does not connect yet.
std::shared_ptr<grpc::Channel> MakeControlChannel(const std::string& socket_path);

}  // namespace axon::rpc
