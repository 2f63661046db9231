// Two or more GPUs (issue 7): one daemon serving a client on GPU 0 and one on
// GPU 1 (a peer copy in the daemon, checksummed by kernels, 1 B to 1 GiB),
// and the daemon holding a CUDA context only on the devices its clients use.
// Skips with fewer than two GPUs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/kernels.h"
#include "tests/support/cluster.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "tests/gpu/on_device.h"
#endif

namespace axon::testing {
namespace {

#ifdef AXON_HAVE_CUDA
// The checksum of the first `bytes` bytes of `memory`, computed on its GPU.
uint64_t Sum(const OnDevice& memory, size_t bytes) {
  uint64_t sum = 0;
  cudaSetDevice(memory.device);
  EXPECT_TRUE(gpu::ChecksumDevice(memory.data, bytes, &sum));
  return sum;
}

// Sends [0, bytes) of `from` (client `a`, endpoint "a") to `to` (client
// `b`'s endpoint "b"), into `into`; true when both sides succeeded.
bool Move(Client& a, Client& b, const std::string& to, const Buffer& from, const Buffer& into,
          size_t bytes, uint64_t tag) {
  auto recv = b.PostRecv("b", tag, into, 0, bytes);
  auto send = a.Send("a", to, tag, from, 0, bytes);
  if (!recv.ok() || !send.ok()) return false;
  auto sent = a.Wait(*send, 30000);
  auto got = b.Wait(*recv, 30000);
  return sent.ok() && got.ok() && sent->status.ok() && got->status.ok();
}

// The bus ids nvidia-smi lists for process `pid`, or "?" when it lists no
// processes at all (some containers hide them).
std::string SmiBusIds(pid_t pid) {
  FILE* p =
      ::popen("nvidia-smi --query-compute-apps=pid,gpu_bus_id --format=csv,noheader 2>&1", "r");
  if (p == nullptr) return "?";
  std::string out, line;
  char buffer[512];
  bool any = false;
  while (std::fgets(buffer, sizeof(buffer), p) != nullptr) {
    line = buffer;
    if (line.find(',') == std::string::npos) continue;
    any = true;
    if (std::stoi(line.substr(0, line.find(','))) == pid) out += line;
  }
  ::pclose(p);
  return any ? out : "?";
}
#endif

class MultiGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifdef AXON_HAVE_CUDA
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) {
      GTEST_SKIP() << "needs two GPUs, found " << devices;
    }
    axond_ = std::make_unique<Axond>(dir_);
    ASSERT_TRUE(axond_->WaitReady()) << axond_->process().Log();
#else
    GTEST_SKIP() << "built without CUDA";
#endif
  }
  TempDir dir_;
  std::unique_ptr<Axond> axond_;
};

TEST_F(MultiGpuTest, PeerCopyFromGpu0ToGpu1) {
#ifdef AXON_HAVE_CUDA
  constexpr size_t kMax = size_t{1} << 30;
  OnDevice source(0, kMax), target(1, kMax);
  ASSERT_TRUE(source.data && target.data);
  cudaSetDevice(0);
  ASSERT_TRUE(gpu::FillDevice(source.data, kMax, 3));
  auto a = Client::Connect({.socket_path = axond_->socket(), .client_name = "gpu0"});
  auto b = Client::Connect({.socket_path = axond_->socket(), .client_name = "gpu1"});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->BindEndpoint("a").ok() && (*b)->BindEndpoint("b").ok());
  auto from = (*a)->RegisterCuda(source.data, kMax);
  auto into = (*b)->RegisterCuda(target.data, kMax);
  ASSERT_TRUE(from.ok() && into.ok()) << from.status() << into.status();
  EXPECT_EQ(from->device(), 0);
  EXPECT_EQ(into->device(), 1);
  uint64_t tag = 1;
  for (size_t bytes : {size_t{1}, size_t{4096}, size_t{16385}, size_t{1} << 20, size_t{64} << 20,
                       size_t{256} << 20, kMax}) {
    SCOPED_TRACE(bytes);
    ASSERT_TRUE(Move(**a, **b, "b", *from, *into, bytes, tag++));
    EXPECT_EQ(Sum(target, bytes), Sum(source, bytes));
  }
  const v1::StatusResponse status = Status(*axond_);
  ASSERT_EQ(status.cuda().devices_in_use_size(), 2);
#endif
}

#ifdef AXON_HAVE_CUDA
// A client of daemon 0 with 256 MiB on GPU 0 sends 1 B to 256 MiB to a
// client of daemon 1 with memory on GPU 1, checksummed on both GPUs.
void MoveFromGpu0ToGpu1(Cluster& cluster, int pattern) {
  constexpr size_t kMax = size_t{256} << 20;
  OnDevice source(0, kMax), target(1, kMax);
  ASSERT_TRUE(source.data && target.data);
  cudaSetDevice(0);
  ASSERT_TRUE(gpu::FillDevice(source.data, kMax, pattern));
  auto a = Client::Connect({.socket_path = cluster.daemons[0]->socket()});
  auto b = Client::Connect({.socket_path = cluster.daemons[1]->socket()});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->BindEndpoint("a").ok() && (*b)->BindEndpoint("b").ok());
  auto from = (*a)->RegisterCuda(source.data, kMax);
  auto into = (*b)->RegisterCuda(target.data, kMax);
  ASSERT_TRUE(from.ok() && into.ok());
  uint64_t tag = 1;
  for (size_t bytes : {size_t{1}, size_t{16385}, size_t{8} << 20, kMax}) {
    SCOPED_TRACE(bytes);
    ASSERT_TRUE(Move(**a, **b, "gpu1-node/b", *from, *into, bytes, tag++));
    EXPECT_EQ(Sum(target, bytes), Sum(source, bytes));
  }
}

#endif

TEST_F(MultiGpuTest, AcrossTwoDaemonsOnDifferentGpus) {
#ifdef AXON_HAVE_CUDA
  // Not node-a: the fixture's daemon has that name (and its socket).
  // Bounce buffers over UCX's cuda_ipc (by handle, gpu1-node would open
  // gpu0's memory and hold a context there too).
  Cluster cluster(dir_, {"gpu0-node", "gpu1-node"}, {"gpu.same_host=bounce"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << "gpu0-node: " << cluster.StateOf(0, "gpu1-node") << "\n"
      << cluster.daemons[0]->process().Log() << "\ngpu1-node: " << cluster.StateOf(1, "gpu0-node")
      << "\n"
      << cluster.daemons[1]->process().Log();
  MoveFromGpu0ToGpu1(cluster, 4);
  if (::testing::Test::HasFatalFailure()) return;
  // Each daemon holds a context on its own client's GPU only.
  EXPECT_EQ(Status(*cluster.daemons[0]).cuda().devices_in_use_size(), 1);
  EXPECT_EQ(Status(*cluster.daemons[1]).cuda().devices_in_use(0), 1);
  // Where UCX moves CUDA memory (gpu.remote_path is auto here), the three
  // sizes above the eager limit went direct, over cuda_ipc between the GPUs.
  if (Status(*cluster.daemons[0]).ucx().cuda_memory_supported()) {
    const v1::ListPeersResponse peers = cluster.Peers(0);
    ASSERT_EQ(peers.peers_size(), 1);
    std::string lanes;
    for (const auto& t : peers.peers(0).transports()) lanes += t + " ";
    std::printf("gpu0-node -> gpu1-node: gpu path %s, lanes %s\n",
                peers.peers(0).gpu_path().c_str(), lanes.c_str());
    EXPECT_EQ(peers.peers(0).gpu_path(), "direct");
    EXPECT_NE(lanes.find("cuda_ipc"), std::string::npos) << lanes;
    EXPECT_EQ(Stats(*cluster.daemons[0]).gpu_direct_messages(), 3u);
    EXPECT_EQ(Stats(*cluster.daemons[1]).gpu_direct_messages(), 3u);
  }
#endif
}

// The same by CUDA IPC handle (gpu.same_host: handles, the default): the
// receiving daemon opens the sender's memory on GPU 0 and copies from there
// into its client's memory on GPU 1, so it holds a context on both. Written
// after the last two-GPU machine was lent: not run yet (session 6).
TEST_F(MultiGpuTest, AcrossTwoDaemonsByHandleOnDifferentGpus) {
#ifdef AXON_HAVE_CUDA
  Cluster cluster(dir_, {"gpu0-node", "gpu1-node"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)))
      << cluster.daemons[0]->process().Log() << "\n"
      << cluster.daemons[1]->process().Log();
  if (!Status(*cluster.daemons[0]).ucx().cuda_memory_supported()) {
    GTEST_SKIP() << "this UCX cannot move CUDA memory: no direct path, no handles";
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return cluster.Peers(0).peers_size() == 1 &&
               cluster.Peers(0).peers(0).gpu_path() == "handles";
      },
      std::chrono::seconds(15)));
  MoveFromGpu0ToGpu1(cluster, 5);
  if (::testing::Test::HasFatalFailure()) return;
  EXPECT_EQ(Stats(*cluster.daemons[0]).gpu_handle_messages(), 4u);
  EXPECT_EQ(Stats(*cluster.daemons[1]).gpu_handle_messages(), 4u);
  EXPECT_EQ(Stats(*cluster.daemons[1]).gpu_bounce_allocations(), 0u);
  EXPECT_EQ(Status(*cluster.daemons[0]).cuda().devices_in_use_size(), 1);
  EXPECT_EQ(Status(*cluster.daemons[1]).cuda().devices_in_use_size(), 2);
#endif
}

TEST_F(MultiGpuTest, ContextOnlyWhereTheClientsAre) {
#ifdef AXON_HAVE_CUDA
  // A client on GPU 1 only: the daemon must not touch GPU 0.
  OnDevice one(1, 64 << 20), two(1, 64 << 20);
  ASSERT_TRUE(one.data && two.data);
  auto client = Client::Connect({.socket_path = axond_->socket()});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->BindEndpoint("x").ok());
  auto from = (*client)->RegisterCuda(one.data, 64 << 20);
  auto into = (*client)->RegisterCuda(two.data, 64 << 20);
  ASSERT_TRUE(from.ok() && into.ok());
  auto recv = (*client)->PostRecv("x", 1, *into, 0, 64 << 20);
  auto send = (*client)->Send("x", "x", 1, *from, 0, 64 << 20);
  ASSERT_TRUE(recv.ok() && send.ok());
  auto done = (*client)->Wait(*recv, 30000);
  ASSERT_TRUE(done.ok() && done->status.ok());
  const v1::StatusResponse status = Status(*axond_);
  ASSERT_EQ(status.cuda().devices_in_use_size(), 1);
  EXPECT_EQ(status.cuda().devices_in_use(0), 1);
  const std::string smi = SmiBusIds(axond_->process().pid());
  if (smi == "?") {
    std::printf("nvidia-smi lists no processes here; the daemon's own view: device 1 only\n");
  } else {
    char bus[32] = {};
    ASSERT_EQ(cudaDeviceGetPCIBusId(bus, sizeof(bus), 0), cudaSuccess);
    std::string gpu0 = bus;
    for (auto& c : gpu0) c = static_cast<char>(std::toupper(c));
    std::string upper = smi;
    for (auto& c : upper) c = static_cast<char>(std::toupper(c));
    std::printf("nvidia-smi, the daemon's contexts:\n%s", smi.c_str());
    EXPECT_EQ(upper.find(gpu0.substr(gpu0.size() - 7)), std::string::npos)
        << "the daemon has a context on GPU 0 (" << gpu0 << "):\n"
        << smi;
  }
#endif
}

}  // namespace
}  // namespace axon::testing
