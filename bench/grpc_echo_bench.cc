// grpc_echo_bench: the "plain gRPC" baseline of bench/compare. Two processes
// (it forks its server) on a Unix socket; the client sends the tensor's bytes
// in a protobuf bytes field and the server echoes them back. Prints the round
// trip per size as a table and, with --json PATH, as JSON.
//
//   grpc_echo_bench [--sizes 64,1048576,67108864] [--iterations N] [--json PATH]
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "axon/bench/echo.grpc.pb.h"

namespace {

constexpr int kMaxMessage = 1 << 30;

class EchoService final : public axon::bench::Echo::Service {
  grpc::Status Echo(grpc::ServerContext*, const axon::bench::Blob* request,
                    axon::bench::Blob* reply) override {
    reply->set_data(request->data());
    return grpc::Status::OK;
  }
};

[[noreturn]] void Serve(const std::string& address) {
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessage);
  builder.SetMaxSendMessageSize(kMaxMessage);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  server->Wait();
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"grpc_echo_bench: round trips of bytes through a gRPC echo on a Unix socket"};
  std::string sizes = "64,1048576,67108864", json;
  int iterations = 0;
  app.add_option("--sizes", sizes, "comma-separated sizes in bytes")->capture_default_str();
  app.add_option("--iterations", iterations, "round trips per size (default: by size)");
  app.add_option("--json", json, "write the results here");
  CLI11_PARSE(app, argc, argv);
  const std::string path = absl::StrFormat("/tmp/grpc-echo-%d.sock", ::getpid());
  const std::string address = "unix://" + path;
  const pid_t server = ::fork();
  if (server == 0) Serve(address);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20))) {
    std::fprintf(stderr, "grpc_echo_bench: the server did not come up\n");
    ::kill(server, SIGKILL);
    return 1;
  }
  auto stub = axon::bench::Echo::NewStub(channel);
  std::vector<std::string> rows;
  std::printf("%12s %10s %12s %12s\n", "size", "n", "rt p50 us", "rt min us");
  for (absl::string_view s : absl::StrSplit(sizes, ',', absl::SkipEmpty())) {
    const size_t size = std::stoull(std::string(s));
    const int n = iterations > 0       ? iterations
                  : size >= (16 << 20) ? 20
                  : size >= (1 << 20)  ? 200
                                       : 2000;
    axon::bench::Blob request;
    request.set_data(std::string(size, '\x5a'));
    std::vector<double> us;
    for (int i = 0; i < n + n / 10; ++i) {
      axon::bench::Blob reply;
      grpc::ClientContext context;
      const auto t0 = std::chrono::steady_clock::now();
      const grpc::Status st = stub->Echo(&context, request, &reply);
      const double took =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      if (!st.ok() || reply.data().size() != size) {
        std::fprintf(stderr, "grpc_echo_bench: %s\n", st.error_message().c_str());
        ::kill(server, SIGKILL);
        return 1;
      }
      if (i >= n / 10) us.push_back(took);  // the first tenth warms up
    }
    std::sort(us.begin(), us.end());
    std::printf("%12zu %10d %12.1f %12.1f\n", size, n, us[us.size() / 2], us.front());
    rows.push_back(absl::StrFormat(
        "    {\"size\": %d, \"iterations\": %d, \"round_trip_us\": {\"p50\": %.2f, \"min\": %.2f}}",
        size, n, us[us.size() / 2], us.front()));
  }
  ::kill(server, SIGTERM);
  ::waitpid(server, nullptr, 0);
  ::unlink(path.c_str());
  const std::string out = absl::StrFormat(
      "{\n  \"tool\": \"grpc_echo_bench\",\n  \"transport\": \"gRPC on a Unix socket, bytes "
      "field\",\n  \"rows\": [\n%s\n  ]\n}\n",
      absl::StrJoin(rows, ",\n"));
  if (!json.empty()) std::ofstream(json) << out;
  std::printf("%s", out.c_str());
  return 0;
}
