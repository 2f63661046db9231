// ucx::MemoryHandle against the real UCX: host memory always, CUDA memory
// where a GPU is present (skipped cleanly elsewhere).
#include <gtest/gtest.h>

#include <vector>

#include "daemon/ucx/memory_handle.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::ucx {
namespace {

TEST(UcxMemory, MapsHostMemoryAndPacksAKey) {
  auto context = Context::Create({});
  ASSERT_TRUE(context.ok()) << context.status();
  std::vector<uint8_t> buffer(1 << 20, 7);
  auto handle = MemoryHandle::Map(**context, buffer.data(), buffer.size(), MemoryKind::kHost);
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ((*handle)->address(), buffer.data());
  EXPECT_EQ((*handle)->length(), buffer.size());
  auto key = (*handle)->PackRemoteKey();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(key->empty());
}

TEST(UcxMemory, RefusesEmptyRegions) {
  auto context = Context::Create({});
  ASSERT_TRUE(context.ok()) << context.status();
  uint8_t byte = 0;
  EXPECT_EQ(MemoryHandle::Map(**context, nullptr, 10, MemoryKind::kHost).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MemoryHandle::Map(**context, &byte, 0, MemoryKind::kHost).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UcxMemoryGpu, MapsCudaMemoryWhenUcxSupportsIt) {
#ifndef AXON_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no GPU";
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  ASSERT_EQ(cudaFree(nullptr), cudaSuccess);  // the primary context exists before UCX looks
  auto context = Context::Create({});
  ASSERT_TRUE(context.ok()) << context.status();
  if (!(*context)->info().cuda_memory) GTEST_SKIP() << "this UCX has no CUDA support";
  void* device_memory = nullptr;
  ASSERT_EQ(cudaMalloc(&device_memory, 64 << 20), cudaSuccess);
  {
    auto handle = MemoryHandle::Map(**context, device_memory, 64 << 20, MemoryKind::kCuda);
    ASSERT_TRUE(handle.ok()) << handle.status();
    EXPECT_TRUE((*handle)->PackRemoteKey().ok());
  }
  cudaFree(device_memory);
#endif
}

}  // namespace
}  // namespace axon::ucx
