// Calls with GPU tensors between real daemons, on one node and across two:
// every pairing of host and GPU memory for the request and the reply, the
// caller's own GPU tensors replied into in place, and cudaMalloc'd memory
// without a Buffer (registered once per allocation). Skips without a GPU.
#include <gtest/gtest.h>

#include <cstring>

#include "axon/call.h"
#include "common/cuda/driver.h"
#include "tests/gpu/gpu_support.h"
#include "tests/support/pair_test.h"

namespace axon::testing {
namespace {

constexpr int64_t kBytes = 3 << 20;  // apart, in the chunked range of a GPU send

class GpuCallTest : public ::testing::TestWithParam<bool>, protected Pair {
 protected:
  void SetUp() override {
    if (auto st = cuda::Usable(); !st.ok()) GTEST_SKIP() << st.message();
    StartPair(GetParam());
    if (HasFatalFailure()) return;
    server_ = std::make_unique<Server>(*receiver_, "b");
    // Says where the request's tensor landed, and sends it back.
    server_->Handle("echo", [](const Request& r) -> absl::StatusOr<Reply> {
      const Tensor& t = r.tensors.at(0);
      const uint64_t sum =
          t.on_gpu() ? DeviceSum(t.data, t.bytes()) : gpu::ChecksumHost(t.data, t.bytes());
      return Reply{.header = absl::StrCat(t.on_gpu() ? "gpu " : "host ", sum),
                   .tensors = r.tensors};
    });
    // Answers with a GPU tensor of its own whatever came in.
    server_->Handle("to_gpu", [this](const Request& r) -> absl::StatusOr<Reply> {
      const Tensor& t = r.tensors.at(0);
      if (t.on_gpu()) return absl::InvalidArgumentError("expected a host tensor");
      if (cudaMemcpy(device_->data(), t.data, t.bytes(), cudaMemcpyHostToDevice) != cudaSuccess) {
        return absl::InternalError("cudaMemcpy");
      }
      auto out = Tensor::Of(*device_, 0, t.desc.dtype, t.desc.dims());
      if (!out.ok()) return out.status();
      return Reply{.tensors = {*out}};
    });
    // Answers with a host copy of a GPU request tensor.
    server_->Handle("to_host", [](const Request& r) -> absl::StatusOr<Reply> {
      const Tensor& t = r.tensors.at(0);
      if (!t.on_gpu()) return absl::InvalidArgumentError("expected a GPU tensor");
      auto copy = std::make_shared<std::vector<uint8_t>>(t.bytes());
      if (cudaMemcpy(copy->data(), t.data, t.bytes(), cudaMemcpyDeviceToHost) != cudaSuccess) {
        return absl::InternalError("cudaMemcpy");
      }
      auto out = Tensor::Host(copy->data(), t.desc.dtype, t.desc.dims());
      if (!out.ok()) return out.status();
      out->owner = copy;
      return Reply{.tensors = {*out}};
    });
    auto device = receiver_->AllocateCuda(kBytes);
    ASSERT_TRUE(device.ok()) << device.status();
    device_.emplace(*std::move(device));
    ASSERT_TRUE(server_->Start().ok());
    caller_ = std::make_unique<Caller>(*sender_, "a");
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Caller> caller_;
  std::optional<CudaBuffer> device_;
};

TEST_P(GpuCallTest, GpuToGpuStaysOnTheGpuBothWays) {
  auto in = sender_->AllocateCuda(kBytes);
  auto out = sender_->AllocateCuda(kBytes);
  ASSERT_TRUE(in.ok() && out.ok());
  ASSERT_TRUE(gpu::FillDevice(in->data(), kBytes, 5));
  const uint64_t sum = DeviceSum(in->data(), kBytes);
  auto request = Tensor::Of(*in, 0, dtype::kBFloat16, {kBytes / 2});
  auto into = Tensor::Of(*out, 0, dtype::kBFloat16, {kBytes / 2});
  ASSERT_TRUE(request.ok() && into.ok());
  const Tensor into_list[] = {*into};
  auto reply = caller_->Call(At("b"), "echo", "", {*request}, {.reply_into = into_list});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->header, absl::StrCat("gpu ", sum));  // it landed on the server's GPU
  ASSERT_EQ(reply->tensors.size(), 1u);
  EXPECT_TRUE(reply->tensors[0].on_gpu());
  EXPECT_EQ(reply->tensors[0].data, out->data());  // written in place
  EXPECT_EQ(reply->tensors[0].desc.dtype, dtype::kBFloat16);
  EXPECT_EQ(DeviceSum(out->data(), kBytes), sum);
  // Without reply_into the reply lands in pool memory on the caller's GPU.
  auto pooled = caller_->Call(At("b"), "echo", "", {*request});
  ASSERT_TRUE(pooled.ok()) << pooled.status();
  ASSERT_TRUE(pooled->tensors.at(0).on_gpu());
  EXPECT_EQ(DeviceSum(pooled->tensors[0].data, kBytes), sum);
}

TEST_P(GpuCallTest, HostToGpuAndGpuToHost) {
  auto host = sender_->AllocateHost(kBytes);
  ASSERT_TRUE(host.ok());
  gpu::FillHost(host->data(), kBytes, 9);
  const uint64_t sum = gpu::ChecksumHost(host->data(), kBytes);
  auto request = Tensor::Of(*host, 0, dtype::kUInt8, {kBytes});
  ASSERT_TRUE(request.ok());
  auto to_gpu = caller_->Call(At("b"), "to_gpu", "", {*request});
  ASSERT_TRUE(to_gpu.ok()) << to_gpu.status();
  const Tensor& g = to_gpu->tensors.at(0);
  EXPECT_TRUE(g.on_gpu());  // a GPU reply to a host request lands on this GPU
  EXPECT_EQ(DeviceSum(g.data, kBytes), sum);

  auto to_host = caller_->Call(At("b"), "to_host", "", {g});  // pool GPU memory, sent back
  ASSERT_TRUE(to_host.ok()) << to_host.status();
  const Tensor& h = to_host->tensors.at(0);
  EXPECT_FALSE(h.on_gpu());
  EXPECT_EQ(gpu::ChecksumHost(h.data, kBytes), sum);
}

TEST_P(GpuCallTest, CudaMallocMemoryWithoutABufferIsRegisteredOnce) {
  DeviceAllocation memory(kBytes);
  ASSERT_NE(memory.data, nullptr);
  ASSERT_TRUE(gpu::FillDevice(memory.data, kBytes, 3));
  const uint64_t sum = DeviceSum(memory.data, kBytes);
  auto t = Tensor::Cuda(memory.data, dtype::kFloat32, {kBytes / 4});
  ASSERT_TRUE(t.ok()) << t.status();
  uint64_t before = 0;
  for (int i = 0; i < 4; ++i) {
    auto reply = caller_->Call(At("b"), "echo", "", {*t});
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->header, absl::StrCat("gpu ", sum));
    EXPECT_EQ(DeviceSum(reply->tensors.at(0).data, kBytes), sum);
    // The first call registered the allocation (and the reply's pool); the
    // others register nothing.
    if (i == 0) before = Stats(sending_daemon()).gpu_registrations();
  }
  EXPECT_EQ(Stats(sending_daemon()).gpu_registrations(), before);
}

INSTANTIATE_TEST_SUITE_P(Paths, GpuCallTest, ::testing::Bool(), PathName);

}  // namespace
}  // namespace axon::testing
