// What a client's calls share (Caller and Server alike): the host pool, a
// pool per GPU, the registrations of GPU allocations that tensors without a
// Buffer lie in, and call ids. One per Client, made on first use. Internal.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "axon/client.h"
#include "axon/tensor.h"
#include "client/lib/pool.h"

namespace axon::internal {

// A tensor's bytes as the daemon reads them: registered memory and where
// in it. `keep` holds a copy's block or a registration alive meanwhile.
struct Source {
  const Buffer* buffer = nullptr;
  size_t offset = 0;
  uint64_t bytes = 0;
  std::shared_ptr<void> keep;
};

class CallRuntime {
 public:
  explicit CallRuntime(Client& client);

  // Where `tensor`'s bytes are for the daemon (Tensor's header comment says
  // how each kind of memory is read). Checks its descriptor first
  // (TensorBytes), and fails as ValidateTensorDesc would.
  absl::StatusOr<Source> Resolve(const Tensor& tensor);
  // A host tensor's bytes and where they are in this process, checked as
  // Resolve checks them, when it has 1 to `at_most` bytes; else no address
  // (its size all the same, once its descriptor passed).
  static absl::StatusOr<std::pair<const uint8_t*, uint64_t>> HostBytes(const Tensor& tensor,
                                                                       uint64_t at_most);
  // INVALID_ARGUMENT, naming `what`, unless `tensor` can be written in place
  // by the daemon or by others: registered memory (a Buffer) or GPU memory.
  static absl::Status CheckWritable(const Tensor& tensor, absl::string_view what);
  // Where a tensor described by `desc` lands: pool memory on the GPU the
  // descriptor names (by PCI bus id; the first GPU when this node lacks
  // that one; host memory without any GPU), or host memory. The Tensor's
  // owner holds the block.
  absl::StatusOr<Tensor> Land(const TensorDesc& desc, uint64_t bytes);
  MemoryPool& host() { return host_; }
  // The session's receive area, set up here (slots of `slot_bytes`) unless
  // the client set one up itself: then null (its Buffer is the client's).
  // Shared: tensors viewing a slot keep it mapped past the client.
  absl::StatusOr<std::shared_ptr<const Buffer>> ReceiveArea(uint32_t slot_bytes, uint32_t slots);
  // The receive area ReceiveArea set up; null when it set up none.
  std::shared_ptr<const Buffer> Area();
  uint64_t NextCallId() { return next_call_.fetch_add(1, std::memory_order_relaxed); }

  // Pool limits.
  static constexpr size_t kHostArena = 8 << 20;
  static constexpr size_t kHostMax = size_t{4} << 30;
  static constexpr size_t kGpuArena = 64 << 20;
  static constexpr size_t kGpuMax = size_t{16} << 30;

 private:
  MemoryPool& GpuPool(int device);
  absl::StatusOr<Source> ResolveCuda(const Tensor& tensor, uint64_t bytes);

  Client& client_;
  MemoryPool host_;
  std::atomic<uint64_t> next_call_{1};
  std::mutex mu_;
  std::map<int, std::unique_ptr<MemoryPool>> gpu_pools_;  // guarded by mu_
  // GPU allocations registered for tensors without a Buffer, by base
  // address; the IPC handle tells a new allocation at an old address.
  struct Registration {
    size_t size = 0;
    std::string ipc_handle;
    std::shared_ptr<CudaBuffer> buffer;
  };
  std::map<uintptr_t, Registration> registrations_;  // guarded by mu_
  std::shared_ptr<HostBuffer> area_;                 // guarded by mu_
  std::mutex area_setup_mu_;                         // one ReceiveArea set-up at a time
};

}  // namespace axon::internal
