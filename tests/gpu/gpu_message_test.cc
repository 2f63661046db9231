// GPU tensors through real daemons: same node (a device-to-device copy in
// the daemon) and across two daemons (the direct path, and staged through
// pinned host buffers); host to GPU and back;
// gather sends with a GPU part; VMM buffers shared by fd; chunked and
// cancelled sends; mixed paths between two nodes. The daemon's own handling
// of GPU memory (IPC opens, handles that do not open, a client killed with
// GPU buffers in flight) is in gpu_daemon_test.cc. Checksums are computed by
// kernels. Every test skips cleanly without a GPU.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "axon/client.h"
#include "axon/v1/admin.pb.h"
#include "common/cuda/driver.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/kernels.h"
#include "tests/support/cluster.h"
#include "tests/support/pair_test.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::testing {
namespace {

using gpu::ChecksumDevice;
using gpu::ChecksumHost;
using gpu::FillDevice;
using gpu::FillHost;

// One daemon; two, staging through pinned host memory; two, through UCX in
// device memory (bounce buffers: gpu.same_host=bounce); two, the receiving
// daemon copying out of the sender's memory by CUDA IPC handle.
enum class Path { kLocal, kStaging, kDirect, kHandle };

std::string PathName(const ::testing::TestParamInfo<Path>& p) {
  switch (p.param) {
    case Path::kLocal:
      return "Local";
    case Path::kStaging:
      return "RemoteStaging";
    case Path::kDirect:
      return "RemoteDirect";
    case Path::kHandle:
      return "RemoteByHandle";
  }
  return "?";
}

// Whether this machine's UCX moves CUDA memory, so that the direct path
// starts: asked of one daemon, once.
bool DirectPathAvailable(const TempDir& dir) {
  static const bool available = [&] {
    Axond probe(dir, AxondOptions{.instance = "probe", .sets = {"gpu.remote_path=staging"}});
    if (!probe.WaitReady()) return false;
    return Status(probe).ucx().cuda_memory_supported();
  }();
  return available;
}

class GpuTest : public ::testing::TestWithParam<Path>, protected Pair {
 protected:
  void SetUp() override {
    if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
    const bool direct = GetParam() == Path::kDirect || GetParam() == Path::kHandle;
    if (direct && !DirectPathAvailable(dir_)) {
      GTEST_SKIP() << "this UCX cannot move CUDA memory: no direct path";
    }
    StartPair(GetParam() != Path::kLocal,
              {direct ? "gpu.remote_path=direct" : "gpu.remote_path=staging",
               GetParam() == Path::kDirect ? "gpu.same_host=bounce" : "gpu.same_host=handles"});
  }

  // Sends [0, bytes) of `from` into `into` and waits for both sides.
  void Move(const Buffer& from, const Buffer& into, size_t bytes, uint64_t tag) {
    auto recv = receiver_->PostRecv("b", tag, into, 0, bytes);
    ASSERT_TRUE(recv.ok()) << recv.status();
    auto send = sender_->Send("a", At("b"), tag, from, 0, bytes);
    ASSERT_TRUE(send.ok()) << send.status();
    auto sent = sender_->Wait(*send, 20000);
    auto got = receiver_->Wait(*recv, 20000);
    ASSERT_TRUE(sent.ok() && got.ok()) << sent.status() << got.status() << "\n"
                                       << sending_daemon().process().Log() << "\n"
                                       << receiving_daemon().process().Log();
    ASSERT_TRUE(sent->status.ok()) << bytes << " bytes: " << sent->status;
    ASSERT_TRUE(got->status.ok()) << bytes << " bytes: " << got->status;
    EXPECT_EQ(got->length, bytes);
  }
};

TEST_P(GpuTest, GpuToGpuFromOneByteToOneGiB) {
  constexpr size_t kMax = size_t{1} << 30;
  DeviceAllocation source(kMax), target(kMax);
  ASSERT_TRUE(source.data && target.data) << "cannot allocate 2 GiB on the GPU";
  ASSERT_TRUE(FillDevice(source.data, kMax, 1));
  auto from = sender_->RegisterCuda(source.data, kMax);
  ASSERT_TRUE(from.ok()) << from.status();
  auto into = receiver_->RegisterCuda(target.data, kMax);
  ASSERT_TRUE(into.ok()) << into.status();
  uint64_t tag = 1;
  for (size_t bytes : {size_t{1}, size_t{63}, size_t{4096}, size_t{16384}, size_t{16385},
                       size_t{1} << 20, size_t{64} << 20, size_t{256} << 20, kMax}) {
    SCOPED_TRACE(bytes);
    ASSERT_TRUE(FillDevice(target.data, bytes, 99));  // not the pattern
    Move(*from, *into, bytes, tag++);
    EXPECT_EQ(DeviceSum(target.data, bytes), DeviceSum(source.data, bytes));
  }
  // Registered once: repeat sends registered nothing more.
  EXPECT_EQ(Stats(sending_daemon()).gpu_registrations(), remote() ? 1u : 2u);
  EXPECT_GT(Stats(remote() ? receiving_daemon() : sending_daemon()).gpu_copies(), 0u);
  if (GetParam() == Path::kStaging) {
    EXPECT_GT(Stats(sending_daemon()).gpu_staged_messages(), 0u);
    EXPECT_EQ(Stats(sending_daemon()).gpu_direct_messages(), 0u);
  }
  // The five sizes above the eager limit, and all nine.
  const uint64_t above_eager =
      16385 + (uint64_t{1} << 20) + (uint64_t{64} << 20) + (uint64_t{256} << 20) + kMax;
  const uint64_t all = above_eager + 1 + 63 + 4096 + 16384;
  if (GetParam() == Path::kDirect) {
    EXPECT_EQ(Stats(sending_daemon()).gpu_direct_messages(), 5u);
    EXPECT_EQ(Stats(receiving_daemon()).gpu_direct_messages(), 5u);
    EXPECT_EQ(Stats(sending_daemon()).gpu_direct_bytes(), above_eager);
    EXPECT_EQ(Stats(receiving_daemon()).gpu_direct_bytes(), above_eager);
    EXPECT_EQ(Stats(sending_daemon()).gpu_handle_messages(), 0u);
  }
  if (GetParam() == Path::kHandle) {  // all nine, whatever the size; no bounce buffer
    EXPECT_EQ(Stats(sending_daemon()).gpu_handle_messages(), 9u);
    EXPECT_EQ(Stats(receiving_daemon()).gpu_handle_messages(), 9u);
    EXPECT_EQ(Stats(sending_daemon()).gpu_handle_bytes(), all);
    EXPECT_EQ(Stats(receiving_daemon()).gpu_handle_bytes(), all);
    EXPECT_EQ(Stats(sending_daemon()).gpu_direct_messages(), 0u);
    EXPECT_EQ(Stats(sending_daemon()).gpu_bounce_allocations(), 0u);
    EXPECT_EQ(Stats(receiving_daemon()).gpu_bounce_allocations(), 0u);
  }
  if (remote()) {
    // 1 GiB went in 32 chunks, at most 8 of them in bounce buffers at once
    // (each side), and the buffers were reused (without the bound: 32+).
    EXPECT_LE(Stats(sending_daemon()).gpu_bounce_allocations(), 16u);
    EXPECT_LE(Stats(receiving_daemon()).gpu_bounce_allocations(), 16u);
  }
}

TEST_P(GpuTest, HostToGpuAndBack) {
  constexpr size_t kBytes = size_t{8} << 20;
  DeviceAllocation device(kBytes);
  ASSERT_TRUE(device.data);
  auto gpu_in = receiver_->RegisterCuda(device.data, kBytes);
  ASSERT_TRUE(gpu_in.ok()) << gpu_in.status();
  auto host_out = sender_->AllocateHost(kBytes);
  ASSERT_TRUE(host_out.ok());
  FillHost(host_out->data(), kBytes, 5);
  uint64_t tag = 1;
  for (size_t bytes : {size_t{1}, size_t{16385}, kBytes}) {
    SCOPED_TRACE(bytes);
    Move(*host_out, *gpu_in, bytes, tag++);
    EXPECT_EQ(DeviceSum(device.data, bytes), ChecksumHost(host_out->data(), bytes));
  }
  // And back: a GPU source on the sender, a host buffer on the receiver.
  DeviceAllocation source(kBytes);
  ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 6));
  auto gpu_out = sender_->RegisterCuda(source.data, kBytes);
  ASSERT_TRUE(gpu_out.ok()) << gpu_out.status();
  auto host_in = receiver_->AllocateHost(kBytes);
  ASSERT_TRUE(host_in.ok());
  for (size_t bytes : {size_t{1}, size_t{16385}, kBytes}) {
    SCOPED_TRACE(bytes);
    Move(*gpu_out, *host_in, bytes, tag++);
    EXPECT_EQ(ChecksumHost(host_in->data(), bytes), DeviceSum(source.data, bytes));
  }
}

TEST_P(GpuTest, GatherSendWithAHostHeaderAndGpuTensors) {
  auto header = sender_->AllocateHost(64);
  ASSERT_TRUE(header.ok());
  FillHost(header->data(), 64, 3);
  constexpr size_t kTensor = size_t{3} << 20;
  DeviceAllocation t1(kTensor), t2(kTensor), landing(64 + 2 * kTensor);
  ASSERT_TRUE(t1.data && t2.data && landing.data);
  ASSERT_TRUE(FillDevice(t1.data, kTensor, 11) && FillDevice(t2.data, kTensor, 12));
  auto b1 = sender_->RegisterCuda(t1.data, kTensor);
  auto b2 = sender_->RegisterCuda(t2.data, kTensor);
  auto into = receiver_->RegisterCuda(landing.data, 64 + 2 * kTensor);
  ASSERT_TRUE(b1.ok() && b2.ok() && into.ok());
  auto recv = receiver_->PostRecv("b", 7, *into, 0, 64 + 2 * kTensor);
  ASSERT_TRUE(recv.ok());
  const View parts[] = {{&*header, 0, 64}, {&*b1, 0, kTensor}, {&*b2, 0, kTensor}};
  auto send = sender_->Send("a", At("b"), 7, parts);
  ASSERT_TRUE(send.ok()) << send.status();
  auto sent = sender_->Wait(*send, 30000);
  auto got = receiver_->Wait(*recv, 30000);
  ASSERT_TRUE(sent.ok() && got.ok());
  ASSERT_TRUE(sent->status.ok()) << sent->status;
  ASSERT_TRUE(got->status.ok()) << got->status;
  EXPECT_EQ(got->length, 64 + 2 * kTensor);
  auto* base = static_cast<uint8_t*>(landing.data);
  uint64_t header_sum = 0;
  ASSERT_TRUE(ChecksumDevice(base, 64, &header_sum));
  EXPECT_EQ(header_sum, ChecksumHost(header->data(), 64));
  EXPECT_EQ(DeviceSum(base + 64, kTensor), DeviceSum(t1.data, kTensor));
  EXPECT_EQ(DeviceSum(base + 64 + kTensor, kTensor), DeviceSum(t2.data, kTensor));
}

TEST_P(GpuTest, VmmBuffersSharedByFd) {
  constexpr size_t kBytes = size_t{64} << 20;
  auto from = sender_->AllocateCuda(kBytes);
  ASSERT_TRUE(from.ok()) << from.status();
  auto into = receiver_->AllocateCuda(kBytes);
  ASSERT_TRUE(into.ok()) << into.status();
  EXPECT_TRUE(from->on_gpu());
  ASSERT_TRUE(FillDevice(from->data(), kBytes, 21));
  Move(*from, *into, kBytes, 1);
  EXPECT_EQ(DeviceSum(into->data(), kBytes), DeviceSum(from->data(), kBytes));
  EXPECT_GE(Stats(sending_daemon()).gpu_vmm_imports(), 1u);
}

// A send larger than Chunking::kChunk crosses daemons in chunks, 8 at a
// time: refused (no room), withdrawn (cancel) and then delivered, the daemons
// stay sound. Chunks staged after a failure travel empty.
TEST_P(GpuTest, ChunkedSendsRefusedCancelledThenDelivered) {
  constexpr size_t kBytes = size_t{320} << 20;  // 10 chunks
  DeviceAllocation source(kBytes), target(kBytes);
  ASSERT_TRUE(source.data && target.data && FillDevice(source.data, kBytes, 8));
  auto from = sender_->RegisterCuda(source.data, kBytes);
  auto into = receiver_->RegisterCuda(target.data, kBytes);
  ASSERT_TRUE(from.ok() && into.ok());
  // No room: a 1 MiB buffer for 320 MiB.
  auto small = receiver_->PostRecv("b", 1, *into, 0, 1 << 20);
  auto big = sender_->Send("a", At("b"), 1, *from, 0, kBytes);
  ASSERT_TRUE(small.ok() && big.ok());
  auto refused = sender_->Wait(*big, 20000);
  auto too_small = receiver_->Wait(*small, 20000);
  ASSERT_TRUE(refused.ok() && too_small.ok());
  EXPECT_EQ(refused->status.code(), absl::StatusCode::kResourceExhausted) << refused->status;
  EXPECT_EQ(too_small->status.code(), absl::StatusCode::kResourceExhausted);
  // Withdrawn before anyone posts a receive.
  auto waiting = sender_->Send("a", At("b"), 2, *from, 0, kBytes);
  ASSERT_TRUE(waiting.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it reach the other side
  (void)sender_->Cancel(*waiting);
  auto cancelled = sender_->Wait(*waiting, 20000);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled) << cancelled->status;
  // And a delivery after both.
  Move(*from, *into, kBytes, 3);
  EXPECT_EQ(DeviceSum(target.data, kBytes), DeviceSum(source.data, kBytes));
}

// A send nobody receives is always found by Cancel: being copied into its
// bounce buffer, waiting, or in flight (before, a cancel that came while the
// copy ran answered NOT_FOUND and the send went on). Right after the send,
// ten times each for one piece and for two chunks, to land in the copy now
// and then; the daemons stay sound.
TEST_P(GpuTest, CancelFindsASendWhileItIsCopied) {
  constexpr size_t kBytes = size_t{64} << 20;  // two chunks; half of it is one piece
  DeviceAllocation source(kBytes);
  ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 2));
  auto from = sender_->RegisterCuda(source.data, kBytes);
  ASSERT_TRUE(from.ok()) << from.status();
  uint64_t tag = 1;
  for (size_t bytes : {kBytes / 2, kBytes}) {
    for (int i = 0; i < 10; ++i, ++tag) {
      auto send = sender_->Send("a", At("b"), tag, *from, 0, bytes);
      ASSERT_TRUE(send.ok()) << send.status();
      const absl::Status cancel = sender_->Cancel(*send);
      EXPECT_TRUE(cancel.ok()) << bytes << " bytes, " << i << ": " << cancel;
      auto done = sender_->Wait(*send, 20000);
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_EQ(done->status.code(), absl::StatusCode::kCancelled)
          << bytes << " bytes, " << i << ": " << done->status;
    }
  }
  DeviceAllocation target(kBytes);
  ASSERT_TRUE(target.data);
  auto into = receiver_->RegisterCuda(target.data, kBytes);
  ASSERT_TRUE(into.ok()) << into.status();
  Move(*from, *into, kBytes, tag);
  EXPECT_EQ(DeviceSum(target.data, kBytes), DeviceSum(source.data, kBytes));
}

// A chunked send nobody receives yet holds up nothing else to that node:
// only its first chunk keeps the order, the rest wait for answers.
TEST_P(GpuTest, AnUnmatchedLargeSendHoldsUpNothingElse) {
  constexpr size_t kBytes = size_t{320} << 20;  // 10 chunks, more than one window
  DeviceAllocation source(kBytes);
  ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 4));
  auto from = sender_->RegisterCuda(source.data, kBytes);
  ASSERT_TRUE(from.ok()) << from.status();
  auto big = sender_->Send("a", At("b"), 1, *from, 0, kBytes);  // no receive posted
  ASSERT_TRUE(big.ok());
  // A small host message to another endpoint on that node, sent after it.
  ASSERT_TRUE(receiver_->BindEndpoint("c").ok());
  auto note = sender_->AllocateHost(64);
  auto inbox = receiver_->AllocateHost(64);
  ASSERT_TRUE(note.ok() && inbox.ok());
  FillHost(note->data(), 64, 9);
  auto recv = receiver_->PostRecv("c", 2, *inbox, 0, 64);
  auto send = sender_->Send("a", At("c"), 2, *note, 0, 64);
  ASSERT_TRUE(recv.ok() && send.ok());
  auto got = receiver_->Wait(*recv, 10000);
  auto sent = sender_->Wait(*send, 10000);
  ASSERT_TRUE(got.ok() && sent.ok()) << got.status() << sent.status();
  EXPECT_TRUE(got->status.ok()) << got->status;
  EXPECT_TRUE(sent->status.ok()) << sent->status;
  EXPECT_EQ(ChecksumHost(inbox->data(), 64), ChecksumHost(note->data(), 64));
  // The large one is still waiting; withdrawn, it says so.
  (void)sender_->Cancel(*big);
  auto cancelled = sender_->Wait(*big, 20000);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->status.code(), absl::StatusCode::kCancelled) << cancelled->status;
}

INSTANTIATE_TEST_SUITE_P(Paths, GpuTest,
                         ::testing::Values(Path::kLocal, Path::kStaging, Path::kDirect,
                                           Path::kHandle),
                         PathName);

// The GPU path a node's daemon shows for `peer` in `axonctl peers`.
std::string GpuPathTo(Cluster& cluster, size_t node, const std::string& peer) {
  const v1::ListPeersResponse peers = cluster.Peers(node);
  for (const auto& p : peers.peers()) {
    if (p.name() == peer) return p.gpu_path();
  }
  return "absent";
}

// Sends [0, bytes) of `from` (endpoint `from_endpoint` of `sender`) to
// `address`, into `into` (endpoint `to_endpoint` of `receiver`).
void MoveGpu(Client& sender, const std::string& from_endpoint, const Buffer& from, Client& receiver,
             const std::string& to_endpoint, const std::string& address, const Buffer& into,
             size_t bytes, uint64_t tag) {
  auto recv = receiver.PostRecv(to_endpoint, tag, into, 0, bytes);
  auto send = sender.Send(from_endpoint, address, tag, from, 0, bytes);
  ASSERT_TRUE(recv.ok() && send.ok()) << recv.status() << send.status();
  auto sent = sender.Wait(*send, 20000);
  auto got = receiver.Wait(*recv, 20000);
  ASSERT_TRUE(sent.ok() && got.ok()) << sent.status() << got.status();
  ASSERT_TRUE(sent->status.ok()) << sent->status;
  ASSERT_TRUE(got->status.ok()) << got->status;
}

// One node stages (gpu.remote_path=staging), the other allows direct (auto):
// the staging node does not advertise CUDA memory, so GPU data goes staged
// in both directions. Restarted with auto, the next connection goes direct.
TEST(GpuMixedPaths, StagingOnEitherEndTurnsTheDirectPathOffBothWays) {
  if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
  TempDir dir;
  if (!DirectPathAvailable(dir)) GTEST_SKIP() << "this UCX cannot move CUDA memory: no direct path";
  Cluster cluster(dir, {"node-a", "node-b"},
                  {"peers.eager_limit=" + std::to_string(kTestEagerLimit)});
  cluster.Start(1, {}, {"gpu.remote_path=staging"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  // node-a may still list the first node-b (auto) for a moment.
  EXPECT_TRUE(WaitFor([&] { return GpuPathTo(cluster, 0, "node-b") == "staging"; },
                      std::chrono::seconds(15)))
      << GpuPathTo(cluster, 0, "node-b");
  EXPECT_EQ(GpuPathTo(cluster, 1, "node-a"), "staging");

  constexpr size_t kBytes = size_t{64} << 20;  // two chunks
  DeviceAllocation x(kBytes), y(kBytes);
  ASSERT_TRUE(x.data && y.data);
  ASSERT_TRUE(FillDevice(x.data, kBytes, 6) && FillDevice(y.data, kBytes, 9));
  auto a = Client::Connect({.socket_path = cluster.daemons[0]->socket(), .client_name = "a"});
  auto b = Client::Connect({.socket_path = cluster.daemons[1]->socket(), .client_name = "b"});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->BindEndpoint("a").ok() && (*b)->BindEndpoint("b").ok());
  auto on_a = (*a)->RegisterCuda(x.data, kBytes);
  auto on_b = (*b)->RegisterCuda(y.data, kBytes);
  ASSERT_TRUE(on_a.ok() && on_b.ok()) << on_a.status() << on_b.status();
  // b to a, then a to b: x and y both end up holding y's pattern.
  const uint64_t pattern = DeviceSum(y.data, kBytes);
  MoveGpu(**b, "b", *on_b, **a, "a", "node-a/a", *on_a, kBytes, 1);
  EXPECT_EQ(DeviceSum(x.data, kBytes), pattern);
  ASSERT_TRUE(FillDevice(y.data, kBytes, 1));
  MoveGpu(**a, "a", *on_a, **b, "b", "node-b/b", *on_b, kBytes, 2);
  EXPECT_EQ(DeviceSum(y.data, kBytes), pattern);
  for (size_t node : {0, 1}) {
    const v1::StatsResponse stats = Stats(*cluster.daemons[node]);
    EXPECT_EQ(stats.gpu_staged_messages(), 2u) << node;  // one sent, one received
    EXPECT_EQ(stats.gpu_staged_bytes(), 2 * kBytes) << node;
    EXPECT_EQ(stats.gpu_direct_messages(), 0u) << node;
  }

  // Node b back to auto: after the reconnection both ends go direct, and as
  // both daemons share this host's GPUs, by handle (gpu.same_host: handles).
  b->reset();
  cluster.Start(1);
  ASSERT_TRUE(WaitFor([&] { return GpuPathTo(cluster, 0, "node-b") == "handles"; },
                      std::chrono::seconds(15)))
      << GpuPathTo(cluster, 0, "node-b");
  EXPECT_EQ(GpuPathTo(cluster, 1, "node-a"), "handles");
  auto b2 = Client::Connect({.socket_path = cluster.daemons[1]->socket(), .client_name = "b"});
  ASSERT_TRUE(b2.ok()) << b2.status();
  auto bound = (*b2)->BindEndpoint("b");
  ASSERT_TRUE(bound.ok()) << bound.status() << "\n" << cluster.daemons[1]->process().Log();
  auto on_b2 = (*b2)->RegisterCuda(y.data, kBytes);
  ASSERT_TRUE(on_b2.ok()) << on_b2.status();
  ASSERT_TRUE(FillDevice(y.data, kBytes, 1));
  MoveGpu(**a, "a", *on_a, **b2, "b", "node-b/b", *on_b2, kBytes, 3);
  EXPECT_EQ(DeviceSum(y.data, kBytes), pattern);
  EXPECT_EQ(Stats(*cluster.daemons[0]).gpu_handle_messages(), 1u);
  EXPECT_EQ(Stats(*cluster.daemons[1]).gpu_handle_messages(), 1u);
}

// Memory freed and allocated again at once (before any peer tick) sends its
// new bytes, whether or not the new allocation has the old one's IPC handle
// (printed: what the driver does). And an empty send.
TEST_P(GpuTest, AReallocatedBufferSendsItsNewBytes) {
#ifdef AXON_HAVE_CUDA
  if (GetParam() != Path::kHandle) GTEST_SKIP() << "by handle only";
  constexpr size_t kBytes = size_t{64} << 20;
  DeviceAllocation target(kBytes);
  auto into = receiver_->RegisterCuda(target.data, kBytes);
  ASSERT_TRUE(into.ok()) << into.status();
  std::string last_handle;
  void* last_address = nullptr;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    DeviceAllocation source(kBytes);
    ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 30 + round));
    cudaIpcMemHandle_t handle;
    ASSERT_EQ(cudaIpcGetMemHandle(&handle, source.data), cudaSuccess);
    const std::string bytes(reinterpret_cast<const char*>(&handle), sizeof(handle));
    if (round > 0) {
      std::printf("round %d: same address %s, same IPC handle %s\n", round,
                  source.data == last_address ? "yes" : "no", bytes == last_handle ? "yes" : "no");
    }
    last_handle = bytes;
    last_address = source.data;
    auto from = sender_->RegisterCuda(source.data, kBytes);
    ASSERT_TRUE(from.ok()) << from.status();
    Move(*from, *into, kBytes, 1 + round);
    EXPECT_EQ(DeviceSum(target.data, kBytes), DeviceSum(source.data, kBytes));
  }  // unregistered, then freed
  EXPECT_EQ(Stats(sending_daemon()).gpu_handle_messages(), 3u);
  // Zero bytes of a GPU buffer go the usual way (no handle to name them);
  // the connection goes on (before, the peer dropped the frame and every
  // later message to it waited).
  DeviceAllocation small(4096);
  ASSERT_TRUE(small.data && FillDevice(small.data, 4096, 5));
  auto from = sender_->RegisterCuda(small.data, 4096);
  ASSERT_TRUE(from.ok()) << from.status();
  Move(*from, *into, 0, 10);
  Move(*from, *into, 4096, 11);
  EXPECT_EQ(DeviceSum(target.data, 4096), DeviceSum(small.data, 4096));
  EXPECT_EQ(Stats(sending_daemon()).gpu_handle_messages(), 4u);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

// A node that takes no handles (gpu.same_host=bounce) refuses the first one
// it is sent; the message goes again through bounce buffers, ahead of the
// one sent after it (held until the answer), and later sends to that node
// go through bounce buffers from the start.
TEST(GpuMixedPaths, ARefusedHandleGoesAgainThroughBounceBuffersInOrder) {
  if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
  TempDir dir;
  if (!DirectPathAvailable(dir)) GTEST_SKIP() << "this UCX cannot move CUDA memory: no direct path";
  Cluster cluster(dir, {"node-a", "node-b"},
                  {"peers.eager_limit=" + std::to_string(kTestEagerLimit)});
  cluster.Start(1, {}, {"gpu.same_host=bounce"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));
  ASSERT_TRUE(WaitFor([&] { return GpuPathTo(cluster, 0, "node-b") == "handles"; },
                      std::chrono::seconds(15)))
      << GpuPathTo(cluster, 0, "node-b");
  constexpr size_t kBytes = size_t{4} << 20;
  DeviceAllocation x(kBytes), y(kBytes), into(2 * kBytes);
  ASSERT_TRUE(x.data && y.data && into.data);
  ASSERT_TRUE(FillDevice(x.data, kBytes, 1) && FillDevice(y.data, kBytes, 2));
  auto a = Client::Connect({.socket_path = cluster.daemons[0]->socket(), .client_name = "a"});
  auto b = Client::Connect({.socket_path = cluster.daemons[1]->socket(), .client_name = "b"});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->BindEndpoint("a").ok() && (*b)->BindEndpoint("b").ok());
  auto from_x = (*a)->RegisterCuda(x.data, kBytes);
  auto from_y = (*a)->RegisterCuda(y.data, kBytes);
  auto on_b = (*b)->RegisterCuda(into.data, 2 * kBytes);
  ASSERT_TRUE(from_x.ok() && from_y.ok() && on_b.ok());
  // Two sends with one tag, back to back: the receives match them in order.
  auto first = (*a)->Send("a", "node-b/b", 7, *from_x, 0, kBytes);
  auto second = (*a)->Send("a", "node-b/b", 7, *from_y, 0, kBytes);
  ASSERT_TRUE(first.ok() && second.ok());
  auto got_first = (*b)->PostRecv("b", 7, *on_b, 0, kBytes);
  auto got_second = (*b)->PostRecv("b", 7, *on_b, kBytes, kBytes);
  ASSERT_TRUE(got_first.ok() && got_second.ok());
  for (auto [client, op] : {std::pair{a->get(), *first}, std::pair{a->get(), *second},
                            std::pair{b->get(), *got_first}, std::pair{b->get(), *got_second}}) {
    auto done = client->Wait(op, 20000);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_TRUE(done->status.ok()) << done->status;
  }
  auto* landed = static_cast<uint8_t*>(into.data);
  EXPECT_EQ(DeviceSum(landed, kBytes), DeviceSum(x.data, kBytes));
  EXPECT_EQ(DeviceSum(landed + kBytes, kBytes), DeviceSum(y.data, kBytes));
  // A later send goes through bounce buffers at once.
  MoveGpu(**a, "a", *from_x, **b, "b", "node-b/b", *on_b, kBytes, 8);
  const v1::StatsResponse sent = Stats(*cluster.daemons[0]);
  EXPECT_EQ(sent.gpu_handle_messages(), 0u);
  EXPECT_EQ(sent.gpu_direct_messages(), 3u);
  EXPECT_EQ(Stats(*cluster.daemons[1]).gpu_peer_handles_open(), 0u);
  EXPECT_NE(cluster.daemons[0]->process().Log().find("cannot open CUDA IPC handles"),
            std::string::npos);
}

// By handle, the receiving daemon holds the sender's allocation open until
// the sending client lets go of it, and then closes it: the memory is freed
// for real within a peer tick of the sender's unregistration.
TEST_P(GpuTest, APeerLetsGoOfAHandleWhenTheSenderDoes) {
#ifdef AXON_HAVE_CUDA
  if (GetParam() != Path::kHandle) GTEST_SKIP() << "by handle only";
  constexpr size_t kSmall = size_t{1} << 20;
  DeviceAllocation warm(kSmall), target(kSmall);
  auto warm_buffer = sender_->RegisterCuda(warm.data, kSmall);
  auto into = receiver_->RegisterCuda(target.data, kSmall);
  ASSERT_TRUE(warm_buffer.ok() && into.ok());
  Move(*warm_buffer, *into, kSmall, 1);  // both daemons' contexts up
  const uint64_t open_before = Stats(receiving_daemon()).gpu_peer_handles_open();
  EXPECT_EQ(open_before, 1u);
  const size_t baseline = FreeGpuBytes();
  constexpr size_t kBytes = size_t{1} << 30;
  auto source = std::make_unique<DeviceAllocation>(kBytes);
  ASSERT_TRUE(source->data && FillDevice(source->data, kBytes, 3));
  std::optional<CudaBuffer> from;
  {
    auto registered = sender_->RegisterCuda(source->data, kBytes);
    ASSERT_TRUE(registered.ok()) << registered.status();
    from.emplace(*std::move(registered));
  }
  Move(*from, *into, kSmall, 2);
  EXPECT_EQ(DeviceSum(target.data, kSmall), DeviceSum(source->data, kSmall));
  EXPECT_EQ(Stats(receiving_daemon()).gpu_peer_handles_open(), open_before + 1);
  from.reset();    // unregistered: the sending daemon closes its mapping
  source.reset();  // cudaFree: the memory stays while the peer has it open
  EXPECT_TRUE(
      WaitFor([&] { return Stats(receiving_daemon()).gpu_peer_handles_open() == open_before; },
              std::chrono::seconds(10)))
      << Stats(receiving_daemon()).gpu_peer_handles_open();
  EXPECT_TRUE(WaitFor([&] { return FreeGpuBytes() + (size_t{64} << 20) >= baseline; },
                      std::chrono::seconds(15)))
      << "free " << FreeGpuBytes() << ", baseline " << baseline;
  // The first allocation still goes by handle, without a new probe.
  Move(*warm_buffer, *into, kSmall, 3);
  EXPECT_EQ(Stats(sending_daemon()).gpu_handle_messages(), 3u);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace axon::testing
