// GpuCopier on real GPUs: copies finish in order and report through Poll, the
// gather kernel moves scattered blocks of any alignment, and
// with two GPUs, batches alternating between devices (each event recorded on
// the device it was made on). Skips without a GPU, or with one for the
// second test.
#include "daemon/cuda/gpu_copier.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "common/cuda/driver.h"
#include "tests/gpu/on_device.h"

namespace axon::daemon {
namespace {

using axon::testing::OnDevice;

// Polls until `pending` callbacks have run, or 10 s.
void PollUntil(GpuCopier& copier, const int& done, int pending) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < pending && std::chrono::steady_clock::now() < deadline) {
    if (!copier.Poll()) std::this_thread::yield();
  }
}

int Devices() {
  int n = 0;
  if (!cuda::Usable().ok() || cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

TEST(GpuCopier, CopiesHostToDeviceAndBackInOrder) {
  if (Devices() < 1) GTEST_SKIP() << "no GPU";
  constexpr size_t kBytes = 4 << 20;
  std::vector<uint8_t> in(kBytes), out(kBytes, 0);
  for (size_t i = 0; i < kBytes; ++i) in[i] = static_cast<uint8_t>(i * 7 + 3);
  OnDevice gpu(0, kBytes);
  ASSERT_NE(gpu.data, nullptr);
  GpuCopier copier;
  int done = 0;
  std::vector<int> order;
  ASSERT_TRUE(copier.Copy(0, gpu.data, in.data(), kBytes).ok());
  copier.Then(0, [&](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st;
    order.push_back(1);
    ++done;
  });
  ASSERT_TRUE(copier.Copy(0, out.data(), gpu.data, kBytes).ok());
  copier.Then(0, [&](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st;
    order.push_back(2);
    ++done;
  });
  EXPECT_TRUE(copier.busy());
  PollUntil(copier, done, 2);
  ASSERT_EQ(done, 2);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_FALSE(copier.busy());
  EXPECT_EQ(out, in);
  EXPECT_EQ(copier.copies(), 2u);
  EXPECT_EQ(copier.bytes(), 2 * kBytes);
}

TEST(GpuCopier, CallbacksOfOneDeviceRunInQueueOrder) {
  // A large copy, then many small ones behind it on the same stream, each
  // with its callback, polled as fast as it goes. The small ones finish
  // within microseconds of the large one: a poll that found the first
  // batch not ready must not run a later one it then finds done (the
  // staging path would post a message's chunk 1 before its chunk 0).
  if (Devices() < 1) GTEST_SKIP() << "no GPU";
  constexpr size_t kBig = 64 << 20, kSmall = 256;
  constexpr int kBatches = 64;
  OnDevice from(0, kBig), to(0, kBig);
  ASSERT_TRUE(from.data && to.data);
  GpuCopier copier;
  for (int round = 0; round < 200; ++round) {
    std::vector<int> order;
    int done = 0;
    for (int b = 0; b < kBatches; ++b) {
      ASSERT_TRUE(copier.Copy(0, to.data, from.data, b == 0 ? kBig : kSmall).ok());
      copier.Then(0, [&order, &done, b](absl::Status st) {
        EXPECT_TRUE(st.ok()) << st;
        order.push_back(b);
        ++done;
      });
    }
    PollUntil(copier, done, kBatches);
    ASSERT_EQ(done, kBatches);
    for (int b = 0; b < kBatches; ++b) ASSERT_EQ(order[b], b) << "round " << round;
  }
}

TEST(GpuCopier, GatherMovesScatteredUnalignedAndLargeBlocks) {
  // Blocks of every alignment and size, shuffled between source and target
  // positions: 16-byte ones (the vector path), odd offsets and lengths (the
  // byte path), pieces split at 64 KiB, blocks over kGatherMaxBlock (copy
  // engines), and more pieces than one launch takes.
  if (Devices() < 1) GTEST_SKIP() << "no GPU";
  std::vector<size_t> lengths;
  for (int i = 0; i < 1500; ++i) lengths.push_back(i % 3 == 0 ? 16384 : 1 + (i * 977) % 20000);
  lengths.push_back(GpuCopier::kGatherMaxBlock + 3);
  lengths.push_back(200 * 1024);
  size_t total = 0;
  std::vector<size_t> at;
  for (size_t n : lengths) {
    at.push_back(total);
    total += n;
  }
  std::vector<uint8_t> in(total), out(total, 0), want(total, 0);
  for (size_t i = 0; i < total; ++i) in[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  OnDevice from(0, total), to(0, total);
  ASSERT_TRUE(from.data && to.data);
  ASSERT_EQ(cudaMemcpy(from.data, in.data(), total, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemset(to.data, 0, total), cudaSuccess);
  // Block i goes to where block (n-1-i) would start if the order were
  // reversed: every target position moves.
  std::vector<void*> into;
  std::vector<const void*> src;
  size_t reversed = 0;
  for (size_t i = lengths.size(); i-- > 0;) {
    into.push_back(static_cast<char*>(to.data) + reversed);
    src.push_back(static_cast<const char*>(from.data) + at[i]);
    std::copy_n(in.begin() + static_cast<ptrdiff_t>(at[i]), lengths[i],
                want.begin() + static_cast<ptrdiff_t>(reversed));
    reversed += lengths[i];
  }
  std::vector<size_t> bytes(lengths.rbegin(), lengths.rend());
  GpuCopier copier;
  ASSERT_TRUE(copier.Gather(0, into, src, bytes).ok());
  int done = 0;
  copier.Then(0, [&](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st;
    ++done;
  });
  PollUntil(copier, done, 1);
  ASSERT_EQ(done, 1);
  ASSERT_EQ(cudaMemcpy(out.data(), to.data, total, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(out == want);
  EXPECT_EQ(copier.copies(), lengths.size());
  EXPECT_EQ(copier.bytes(), total);
}

TEST(GpuCopier, BatchesAlternateBetweenTwoGpus) {
  if (Devices() < 2) GTEST_SKIP() << "needs two GPUs, found " << Devices();
  constexpr size_t kBytes = 1 << 20;
  OnDevice zero(0, kBytes), one(1, kBytes);
  ASSERT_TRUE(zero.data && one.data);
  std::vector<uint8_t> in(kBytes, 0x5a), out(kBytes, 0);
  GpuCopier copier;
  int done = 0;
  // Each round: host -> GPU 0, a peer copy GPU 0 -> GPU 1 on GPU 0's
  // stream, then GPU 1 -> host on GPU 1's; finished events are reused.
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(copier.Copy(0, zero.data, in.data(), kBytes).ok());
    ASSERT_TRUE(copier.Copy(0, one.data, zero.data, kBytes).ok());
    copier.Then(0, [&](absl::Status st) {
      EXPECT_TRUE(st.ok()) << st;
      ++done;
    });
    PollUntil(copier, done, 2 * round + 1);
    ASSERT_TRUE(copier.Copy(1, out.data(), one.data, kBytes).ok());
    copier.Then(1, [&](absl::Status st) {
      EXPECT_TRUE(st.ok()) << st;
      ++done;
    });
    PollUntil(copier, done, 2 * round + 2);
    ASSERT_EQ(done, 2 * round + 2);
    EXPECT_EQ(out, in);
    out.assign(kBytes, 0);
    in.assign(kBytes, static_cast<uint8_t>(round + 1));
  }
}

}  // namespace
}  // namespace axon::daemon
