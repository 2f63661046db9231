// The daemon's own handling of GPU memory, one daemon: an allocation is
// opened once however many regions name it; `axonctl status` says whether
// the GPU is shared through MPS; handles that do not open are
// INVALID_ARGUMENT; a client killed with GPU buffers in flight leaves nothing
// open. Every test skips cleanly without a GPU.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "axon/v1/control.grpc.pb.h"
#include "common/cuda/driver.h"
#include "common/fd_passing.h"
#include "common/rpc/channel.h"
#include "common/unix_socket.h"
#include "common/wire/session.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/kernels.h"
#include "tests/support/cluster.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::testing {
namespace {

class GpuDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
    axond_ = std::make_unique<Axond>(dir_);
    ASSERT_TRUE(axond_->WaitReady()) << axond_->process().Log();
  }
  TempDir dir_;
  std::unique_ptr<Axond> axond_;
};

TEST_F(GpuDaemonTest, OneAllocationIsOpenedOnce) {
  DeviceAllocation memory(size_t{4} << 20);
  ASSERT_TRUE(memory.data);
  auto client = Client::Connect({.socket_path = axond_->socket()});
  ASSERT_TRUE(client.ok());
  auto* base = static_cast<uint8_t*>(memory.data);
  auto first = (*client)->RegisterCuda(base, 1 << 20);
  auto second = (*client)->RegisterCuda(base + (1 << 20), 1 << 20);
  ASSERT_TRUE(first.ok() && second.ok()) << first.status() << second.status();
  v1::StatsResponse stats = Stats(*axond_);
  EXPECT_EQ(stats.gpu_ipc_opens(), 1u);
  EXPECT_EQ(stats.gpu_ipc_reuses(), 1u);
  EXPECT_EQ(stats.gpu_allocations_open(), 1u);
  // Bytes outside the allocation are refused.
  auto outside = (*client)->RegisterCuda(base + (3 << 20), 2 << 20);
  EXPECT_EQ(outside.status().code(), absl::StatusCode::kInvalidArgument) << outside.status();
  // Host memory is not GPU memory.
  std::vector<uint8_t> host(4096);
  EXPECT_EQ((*client)->RegisterCuda(host.data(), host.size()).status().code(),
            absl::StatusCode::kInvalidArgument);
  { CudaBuffer gone = *std::move(first); }  // unregistered; the allocation stays open
  EXPECT_EQ(Stats(*axond_).gpu_allocations_open(), 1u);
  { CudaBuffer gone = *std::move(second); }  // the last region in it: closed
  EXPECT_EQ(Stats(*axond_).gpu_allocations_open(), 0u);
}

// `axonctl status` says whether the GPUs axond uses are shared through MPS
// (without it, processes on one GPU take turns by time slice): as this
// process's CUDA sees it, on the GPU machine with and without MPS running.
TEST_F(GpuDaemonTest, StatusSaysWhetherTheGpuIsSharedThroughMps) {
  DeviceAllocation memory(size_t{1} << 20);
  ASSERT_TRUE(memory.data);
  auto client = Client::Connect({.socket_path = axond_->socket()});
  ASSERT_TRUE(client.ok());
  auto buffer = (*client)->RegisterCuda(memory.data, 1 << 20);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  v1::StatusResponse status;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(axond_->Ctl({"--json", "status"}).out, &status)
          .ok());
  ASSERT_EQ(status.cuda().devices_in_use_size(), 1);
  const int device = status.cuda().devices_in_use(0);
  const bool mps = cuda::SharedByMps(device);
  std::printf("GPU %d shared through MPS: %s\n", device, mps ? "yes" : "no");
  EXPECT_EQ(status.cuda().devices_on_mps_size(), mps ? 1 : 0);
  const std::string text = axond_->Ctl({"status"}).out;
  EXPECT_NE(text.find(mps ? "(through MPS: " : "(not shared through MPS)"), std::string::npos)
      << text;
}

// A session opened by hand, to send what libaxon never would.
struct RawSession {
  UniqueFd socket;
  uint32_t next = 1;
  absl::StatusOr<wire::SessionReply> Call(wire::SessionRequest request, absl::Span<const int> fds) {
    request.request_id = next++;
    if (auto st = SendMessage(socket.get(), wire::EncodeSessionRequest(request), fds); !st.ok()) {
      return st;
    }
    auto message = ReceiveMessage(socket.get());
    if (!message.ok()) return message.status();
    return wire::DecodeSessionReply(message->bytes);
  }
};

RawSession OpenRawSession(const std::string& socket_path) {
  auto stub = v1::Control::NewStub(rpc::MakeControlChannel(socket_path));
  v1::AttachRequest request;
  request.set_client_name("raw");
  request.set_protocol_version(0);
  v1::AttachResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(stub->Attach(&context, request, &response).ok());
  auto socket = ConnectUnixSocket(socket_path + ".session", SOCK_SEQPACKET);
  EXPECT_TRUE(socket.ok());
  RawSession raw{*std::move(socket)};
  auto hello = raw.Call({.type = wire::SessionMessageType::kHello,
                         .session_id = response.session_id(),
                         .token = response.token()},
                        {});
  EXPECT_TRUE(hello.ok() && hello->status().ok());
  return raw;
}

TEST_F(GpuDaemonTest, HandlesThatDoNotOpenAreInvalidArgument) {
  RawSession raw = OpenRawSession(axond_->socket());
  auto bus = cuda::BusIdOf(0);
  ASSERT_TRUE(bus.ok());
  // Garbage.
  auto garbage = raw.Call({.type = wire::SessionMessageType::kRegisterCuda,
                           .length = 4096,
                           .device = *bus,
                           .handle = std::string(cuda::kIpcHandleBytes, '\x5a')},
                          {});
  ASSERT_TRUE(garbage.ok()) << garbage.status();
  EXPECT_EQ(garbage->code, absl::StatusCode::kInvalidArgument) << garbage->message;
  // A real handle of an allocation that is gone (freed by its exporter).
  std::string stale;
  {
    DeviceAllocation memory(1 << 20);
    ASSERT_TRUE(memory.data);
    auto handle = cuda::IpcHandleOf(reinterpret_cast<uintptr_t>(memory.data));
    ASSERT_TRUE(handle.ok());
    stale = *handle;
  }
  auto gone = raw.Call({.type = wire::SessionMessageType::kRegisterCuda,
                        .length = 4096,
                        .device = *bus,
                        .handle = stale},
                       {});
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->code, absl::StatusCode::kInvalidArgument) << gone->message;
  // No such device.
  auto nowhere = raw.Call({.type = wire::SessionMessageType::kRegisterCuda,
                           .length = 4096,
                           .device = "0000:ff:1f.7",
                           .handle = std::string(cuda::kIpcHandleBytes, '\x5a')},
                          {});
  ASSERT_TRUE(nowhere.ok());
  EXPECT_EQ(nowhere->code, absl::StatusCode::kInvalidArgument) << nowhere->message;
  // A VMM registration whose fd is not an exported allocation.
  UniqueFd not_vmm(::memfd_create("not-vmm", MFD_CLOEXEC));
  const int fds[] = {not_vmm.get()};
  auto bad_fd = raw.Call({.type = wire::SessionMessageType::kRegisterCudaFd,
                          .length = 4096,
                          .device = *bus,
                          .size = 2 << 20},
                         fds);
  ASSERT_TRUE(bad_fd.ok());
  EXPECT_EQ(bad_fd->code, absl::StatusCode::kInvalidArgument) << bad_fd->message;
  // The daemon is fine: a real registration and a move still work.
  EXPECT_EQ(axond_->Ctl({"health"}).exit_code, 0);
  DeviceAllocation memory(1 << 20);
  auto client = Client::Connect({.socket_path = axond_->socket()});
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE((*client)->RegisterCuda(memory.data, 1 << 20).ok());
}

TEST_F(GpuDaemonTest, KilledClientReleasesItsGpuMemory) {
#ifdef AXON_HAVE_CUDA
  // The daemon's own CUDA context first, so the baseline includes it.
  {
    DeviceAllocation warm(1 << 20);
    auto client = Client::Connect({.socket_path = axond_->socket()});
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE((*client)->RegisterCuda(warm.data, 1 << 20).ok());
  }
  auto receiver = Client::Connect({.socket_path = axond_->socket()});
  ASSERT_TRUE(receiver.ok());
  ASSERT_TRUE((*receiver)->BindEndpoint("sink").ok());
  ASSERT_TRUE(
      WaitFor([&] { return Stats(*axond_).gpu_allocations_open() == 0; }, std::chrono::seconds(5)));
  const size_t baseline = FreeGpuBytes();
  constexpr size_t kBytes = size_t{1} << 30;
  for (const char* mode : {"ipc", "vmm"}) {
    SCOPED_TRACE(mode);
    Child doomed({HelperPath("gpu_client"), axond_->socket(), "doomed", "sink",
                  std::to_string(kBytes), mode},
                 dir_.File(std::string("gpu_client_") + mode + ".log"));
    ASSERT_TRUE(WaitFor([&] { return doomed.Log().find("in flight") != std::string::npos; },
                        std::chrono::seconds(30)))
        << doomed.Log();
    EXPECT_LT(FreeGpuBytes(), baseline - kBytes / 2) << "the helper's 1 GiB is not in use";
    EXPECT_EQ(Stats(*axond_).gpu_allocations_open(), 1u);
    doomed.Signal(SIGKILL);
    doomed.Wait(std::chrono::seconds(10));
    // The daemon closes the handle once the send waiting for "sink" fails.
    EXPECT_TRUE(WaitFor([&] { return FreeGpuBytes() + (size_t{64} << 20) >= baseline; },
                        std::chrono::seconds(15)))
        << "free " << FreeGpuBytes() << ", baseline " << baseline;
    EXPECT_EQ(Stats(*axond_).gpu_allocations_open(), 0u);
  }
  EXPECT_EQ(axond_->Ctl({"health"}).exit_code, 0);
  // The receiver's endpoint still works: a fresh transfer moves.
  DeviceAllocation memory(1 << 20);
  auto buffer = (*receiver)->RegisterCuda(memory.data, 1 << 20);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace axon::testing
