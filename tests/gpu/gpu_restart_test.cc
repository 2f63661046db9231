// The restart drill (tests/support/restart_drill.h) with GPU memory: the
// sender's messages and call tensors in a VMM allocation shared by fd, the
// posted receive in cudaMalloc memory registered by IPC handle. Both are
// registered again with each restarted daemon. Skips without a GPU.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "common/cuda/driver.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/restart_drill.h"

namespace axon::testing {
namespace {

TEST(GpuRestartTest, ClientsLiveThroughThreeRestartsOfTheirDaemon) {
  if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
#ifdef AXON_HAVE_CUDA
  TempDir dir;
  std::vector<std::unique_ptr<DeviceAllocation>> allocations;  // outlive the drill's buffers
  bool first = true;
  DrillMemory memory{
      .allocate = [&](Client& client, size_t bytes) -> absl::StatusOr<std::unique_ptr<Buffer>> {
        if (std::exchange(first, false)) {  // the sender's: VMM, shared by fd
          auto buffer = client.AllocateCuda(bytes);
          if (!buffer.ok()) return buffer.status();
          return std::unique_ptr<Buffer>(new CudaBuffer(*std::move(buffer)));
        }
        allocations.push_back(std::make_unique<DeviceAllocation>(bytes));  // by IPC handle
        if (allocations.back()->data == nullptr) return absl::InternalError("cudaMalloc failed");
        auto buffer = client.RegisterCuda(allocations.back()->data, bytes);
        if (!buffer.ok()) return buffer.status();
        return std::unique_ptr<Buffer>(new CudaBuffer(*std::move(buffer)));
      },
      .fill =
          [](const Buffer& b, size_t offset, size_t length, char value) {
            ASSERT_EQ(cudaMemset(static_cast<char*>(b.data()) + offset, value, length),
                      cudaSuccess);
            ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          },
      .read =
          [](const Buffer& b, size_t offset, size_t length) {
            std::string bytes(length, '\0');
            EXPECT_EQ(cudaMemcpy(bytes.data(), static_cast<const char*>(b.data()) + offset, length,
                                 cudaMemcpyDeviceToHost),
                      cudaSuccess);
            return bytes;
          }};
  RunRestartDrill(dir, memory);
#endif
}

}  // namespace
}  // namespace axon::testing
