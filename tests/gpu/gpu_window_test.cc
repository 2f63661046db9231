// One-sided transfers with GPU memory, each test on one daemon (local) and
// across two (remote: the daemons' default GPU path between them): GPU to
// GPU, host to GPU and GPU to host, a batch of 1,000 blocks with one
// notification, and a GPU window revoked under racing writes whose memory is
// freed and reused at once. Checksums are computed by kernels. Skips cleanly
// without a GPU.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "axon/client.h"
#include "common/cuda/driver.h"
#include "tests/gpu/gpu_support.h"
#include "tests/gpu/kernels.h"
#include "tests/support/pair_test.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::testing {
namespace {

using gpu::ChecksumHost;
using gpu::FillDevice;
using gpu::FillHost;

class GpuWindowTest : public ::testing::TestWithParam<bool>, protected Pair {
 protected:
  void SetUp() override {
    if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
    StartPair(GetParam());
  }

  absl::Status Finish(absl::StatusOr<Operation> op) {
    if (!op.ok()) return op.status();
    auto done = sender_->Wait(*op, 60000);
    if (!done.ok()) return done.status();
    return done->status;
  }
};

TEST_P(GpuWindowTest, GpuToGpu64MiB) {
  constexpr size_t kBytes = 64 << 20;
  DeviceAllocation source(kBytes), target(kBytes);
  ASSERT_TRUE(source.data && target.data);
  ASSERT_TRUE(FillDevice(source.data, kBytes, 3));
  ASSERT_TRUE(FillDevice(target.data, kBytes, 9));
  auto from = sender_->RegisterCuda(source.data, kBytes);
  auto into = receiver_->RegisterCuda(target.data, kBytes);
  ASSERT_TRUE(from.ok() && into.ok());
  auto window = receiver_->Expose(*into, 0, kBytes);
  ASSERT_TRUE(window.ok()) << window.status();
  const Block all[] = {{&*from, 0, 0, kBytes}};
  ASSERT_TRUE(Finish(sender_->Write("a", *window, all)).ok());
  EXPECT_EQ(DeviceSum(target.data, kBytes), DeviceSum(source.data, kBytes));
  // And back, into memory of the sender's own.
  ASSERT_TRUE(FillDevice(source.data, kBytes, 11));
  ASSERT_TRUE(Finish(sender_->Read("a", *window, all)).ok());
  EXPECT_EQ(DeviceSum(source.data, kBytes), DeviceSum(target.data, kBytes));
}

TEST_P(GpuWindowTest, HostAndGpuBothWays) {
  constexpr size_t kBytes = 8 << 20;
  DeviceAllocation device(kBytes);
  ASSERT_TRUE(device.data);
  ASSERT_TRUE(FillDevice(device.data, kBytes, 5));
  auto gpu = receiver_->RegisterCuda(device.data, kBytes);
  auto host = sender_->AllocateHost(kBytes);
  ASSERT_TRUE(gpu.ok() && host.ok());
  auto gpu_window = receiver_->Expose(*gpu, 0, kBytes);
  ASSERT_TRUE(gpu_window.ok());
  // GPU window -> host.
  const Block all[] = {{&*host, 0, 0, kBytes}};
  ASSERT_TRUE(Finish(sender_->Read("a", *gpu_window, all)).ok());
  EXPECT_EQ(ChecksumHost(host->data(), kBytes), DeviceSum(device.data, kBytes));
  // Host -> GPU window.
  FillHost(host->data(), kBytes, 21);
  ASSERT_TRUE(Finish(sender_->Write("a", *gpu_window, all)).ok());
  EXPECT_EQ(DeviceSum(device.data, kBytes), ChecksumHost(host->data(), kBytes));
  // GPU -> host window.
  auto host_target = receiver_->AllocateHost(kBytes);
  ASSERT_TRUE(host_target.ok());
  auto host_window = receiver_->Expose(*host_target, 0, kBytes);
  ASSERT_TRUE(host_window.ok());
  DeviceAllocation source(kBytes);
  ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 33));
  auto gpu_source = sender_->RegisterCuda(source.data, kBytes);
  ASSERT_TRUE(gpu_source.ok());
  const Block from_gpu[] = {{&*gpu_source, 0, 0, kBytes}};
  ASSERT_TRUE(Finish(sender_->Write("a", *host_window, from_gpu)).ok());
  EXPECT_EQ(ChecksumHost(host_target->data(), kBytes), DeviceSum(source.data, kBytes));
  // Host window -> GPU (a read into device memory).
  FillHost(host_target->data(), kBytes, 47);
  ASSERT_TRUE(Finish(sender_->Read("a", *host_window, from_gpu)).ok());
  EXPECT_EQ(DeviceSum(source.data, kBytes), ChecksumHost(host_target->data(), kBytes));
}

TEST_P(GpuWindowTest, AThousandGpuBlocksWithOneNotification) {
  constexpr size_t kBlocks = 1000, kBlock = 16384, kBytes = kBlocks * kBlock;
  DeviceAllocation source(kBytes), target(kBytes);
  ASSERT_TRUE(source.data && target.data);
  ASSERT_TRUE(FillDevice(source.data, kBytes, 8));
  ASSERT_TRUE(FillDevice(target.data, kBytes, 1));
  auto from = sender_->RegisterCuda(source.data, kBytes);
  auto into = receiver_->RegisterCuda(target.data, kBytes);
  auto note_into = receiver_->AllocateHost(64);
  ASSERT_TRUE(from.ok() && into.ok() && note_into.ok());
  auto window = receiver_->Expose(*into, 0, kBytes, {.notify_endpoint = "b"});
  ASSERT_TRUE(window.ok());
  std::vector<Block> blocks;
  for (size_t i = 0; i < kBlocks; ++i) blocks.push_back({&*from, i * kBlock, i * kBlock, kBlock});
  auto note = receiver_->PostRecv("b", 42, *note_into, 0, 64);
  ASSERT_TRUE(note.ok());
  const Notification notification{42, "kv"};
  ASSERT_TRUE(Finish(sender_->Write("a", *window, blocks, &notification)).ok());
  auto arrived = receiver_->Wait(*note, 20000);
  ASSERT_TRUE(arrived.ok() && arrived->status.ok());
  // The notification came after every block: the window holds them all.
  EXPECT_EQ(DeviceSum(target.data, kBytes), DeviceSum(source.data, kBytes));
}

#ifdef AXON_HAVE_CUDA
TEST_P(GpuWindowTest, ARevokedGpuWindowsMemoryIsFreedAndReusedSafely) {
  constexpr size_t kBytes = 32 << 20;
  DeviceAllocation source(kBytes);
  ASSERT_TRUE(source.data && FillDevice(source.data, kBytes, 4));
  void* target = nullptr;
  ASSERT_EQ(cudaMalloc(&target, kBytes), cudaSuccess);
  auto from = sender_->RegisterCuda(source.data, kBytes);
  ASSERT_TRUE(from.ok());
  auto into = std::make_unique<CudaBuffer>(*receiver_->RegisterCuda(target, kBytes));
  auto window = receiver_->Expose(*into, 0, kBytes);
  ASSERT_TRUE(window.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread writer([&] {
    const Block all[] = {{&*from, 0, 0, kBytes}};
    while (!stop.load()) (Finish(sender_->Write("a", *window, all)).ok() ? ok : failed)++;
  });
  while (ok.load() < 10) std::this_thread::yield();
  ASSERT_TRUE(receiver_->Unexpose(*window).ok());
  into.reset();  // unregistered: the daemon lets go of the allocation
  ASSERT_EQ(cudaFree(target), cudaSuccess);
  void* reused = nullptr;
  ASSERT_EQ(cudaMalloc(&reused, kBytes), cudaSuccess);
  ASSERT_TRUE(FillDevice(reused, kBytes, 77));
  const uint64_t expected = DeviceSum(reused, kBytes);
  while (failed.load() < 10) std::this_thread::yield();
  stop = true;
  writer.join();
  EXPECT_EQ(DeviceSum(reused, kBytes), expected);
  cudaFree(reused);
}
#endif

INSTANTIATE_TEST_SUITE_P(Path, GpuWindowTest, ::testing::Values(false, true), PathName);

}  // namespace
}  // namespace axon::testing
