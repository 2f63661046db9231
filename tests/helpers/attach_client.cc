// Test helper: attaches to axond over the real control socket, prints
// "session <id>" and then waits to be killed (or detaches with --detach).
// Usage: attach_client SOCKET NAME [--detach]
#include <grpcpp/client_context.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "axon/v1/control.grpc.pb.h"
#include "common/rpc/channel.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: attach_client SOCKET NAME [--detach]\n";
    return 2;
  }
  auto stub = axon::v1::Control::NewStub(axon::rpc::MakeControlChannel(argv[1]));
  axon::v1::AttachRequest request;
  request.set_client_name(argv[2]);
  axon::v1::AttachResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status = stub->Attach(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "attach failed: " << status.error_code() << " " << status.error_message() << "\n";
    return 1;
  }
  std::cout << "session " << response.session_id() << std::endl;
  if (argc > 3 && std::strcmp(argv[3], "--detach") == 0) {
    axon::v1::DetachRequest detach;
    detach.set_session_id(response.session_id());
    detach.set_token(response.token());
    axon::v1::DetachResponse detached;
    grpc::ClientContext detach_context;
    status = stub->Detach(&detach_context, detach, &detached);
    return status.ok() ? 0 : 1;
  }
  while (true) ::pause();
}
