// Tensors as libaxon takes and returns them: a descriptor (dtype, shape,
// device; common/tensor/tensor_desc.h) and the address of the first element,
// host or GPU.
//
//   auto t = axon::Tensor::Of(buffer, 0, axon::dtype::kFloat32, {4, 1024});  // registered
//   auto h = axon::Tensor::Host(vec.data(), axon::dtype::kFloat32, {n});     // any host memory
//   auto g = axon::Tensor::Cuda(ptr, axon::dtype::kBFloat16, {8, 128});      // cudaMalloc'd
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "common/tensor/tensor_desc.h"

namespace axon {

// How libaxon reads a tensor it sends (and writes one it receives into):
// - in a Buffer (`buffer` set): in place, by the daemon;
// - GPU memory without a Buffer: in place too. libaxon registers the
//   allocation the tensor lies in (by CUDA IPC handle) the first time and
//   reuses that registration for every later tensor in it; PyTorch's caching
//   allocator keeps its allocations, so repeat sends cost no registration.
// - host memory without a Buffer (malloc, numpy, torch CPU tensors): copied
//   once into registered memory from libaxon's pool. The daemon can only map
//   memory it was given an fd for (a memfd), so a copy is the only way; it is
//   also cheaper than a registration for the small tensors where it happens
//   most. Allocate with Client::AllocateHost to skip it.
struct Tensor {
  TensorDesc desc;
  void* data = nullptr;            // element [0, ..., 0]: a host or device address
  const Buffer* buffer = nullptr;  // registered memory holding the bytes, when known
  // Tensors libaxon hands out (a reply's, a request's): keeps their memory
  // (a pool block, a receive-area slot) until the last copy of the Tensor
  // is gone.
  std::shared_ptr<void> owner;

  // The bytes the elements take; 0 when the descriptor is invalid.
  uint64_t bytes() const;
  bool on_gpu() const { return desc.device.kind == DeviceKind::kCuda; }
  // A view of the bytes, for host tensors.
  template <typename T>
  absl::Span<T> span() const {
    return {static_cast<T*>(data), static_cast<size_t>(bytes() / sizeof(T))};
  }

  // A contiguous tensor at `offset` of a registered buffer (host or GPU).
  static absl::StatusOr<Tensor> Of(const Buffer& buffer, size_t offset, DType dtype,
                                   std::initializer_list<int64_t> shape);
  static absl::StatusOr<Tensor> Of(const Buffer& buffer, size_t offset, DType dtype,
                                   absl::Span<const int64_t> shape);
  // A contiguous tensor in host memory libaxon does not know.
  static absl::StatusOr<Tensor> Host(void* data, DType dtype, absl::Span<const int64_t> shape);
  static absl::StatusOr<Tensor> Host(void* data, DType dtype,
                                     std::initializer_list<int64_t> shape) {
    return Host(data, dtype, absl::Span<const int64_t>(shape.begin(), shape.size()));
  }
  // A contiguous tensor in CUDA device memory (from cudaMalloc or PyTorch's
  // caching allocator); the device is the one the pointer belongs to.
  static absl::StatusOr<Tensor> Cuda(void* data, DType dtype, absl::Span<const int64_t> shape);
  static absl::StatusOr<Tensor> Cuda(void* data, DType dtype,
                                     std::initializer_list<int64_t> shape) {
    return Cuda(data, dtype, absl::Span<const int64_t>(shape.begin(), shape.size()));
  }
};

// A block of a one-sided operation given as a tensor (Client::WriteTensors,
// ReadTensors): all of `tensor`'s bytes, at `window_offset` in the window.
struct TensorBlock {
  Tensor tensor;
  uint64_t window_offset = 0;
};

// A receive-area message held as a tensor (Client::Hold).
struct Received {
  std::string endpoint;  // the receiving endpoint, bound by this client
  std::string from;      // the sender, "node/endpoint"
  uint64_t tag = 0;
  Tensor tensor;  // uint8, the message's bytes where they landed
};

}  // namespace axon
