// libaxon, part: the calls' shared runtime (call_runtime.h) and Tensor.
#include "client/lib/call_runtime.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/lib/session.h"
#include "common/cuda/driver.h"

namespace axon {

uint64_t Tensor::bytes() const {
  auto bytes = TensorBytes(desc);
  return bytes.ok() ? *bytes : 0;
}

namespace {

absl::StatusOr<Device> DeviceOf(int ordinal) {
  auto bus = cuda::BusIdOf(ordinal);
  if (!bus.ok()) return bus.status();
  return Device{.kind = DeviceKind::kCuda, .ordinal = ordinal, .pci_bus_id = *bus};
}

absl::StatusOr<Tensor> Make(void* data, const Buffer* buffer, DType dtype,
                            absl::Span<const int64_t> shape, Device device, MemoryKind memory) {
  auto desc = TensorDesc::Contiguous(dtype, shape, std::move(device));
  if (!desc.ok()) return desc.status();
  desc->memory = memory;
  return Tensor{.desc = *std::move(desc), .data = data, .buffer = buffer};
}

}  // namespace

absl::StatusOr<Tensor> Tensor::Of(const Buffer& buffer, size_t offset, DType dtype,
                                  std::initializer_list<int64_t> shape) {
  return Of(buffer, offset, dtype, absl::Span<const int64_t>(shape.begin(), shape.size()));
}

absl::StatusOr<Tensor> Tensor::Of(const Buffer& buffer, size_t offset, DType dtype,
                                  absl::Span<const int64_t> shape) {
  Device device;
  if (buffer.on_gpu()) {
    auto d = DeviceOf(buffer.device());
    if (!d.ok()) return d.status();
    device = *std::move(d);
  }
  auto t = Make(static_cast<uint8_t*>(buffer.data()) + offset, &buffer, dtype, shape,
                std::move(device), buffer.on_gpu() ? MemoryKind::kCudaIpc : MemoryKind::kHostMemfd);
  if (!t.ok()) return t;
  if (offset > buffer.size() || t->bytes() > buffer.size() - offset) {
    return absl::InvalidArgumentError(absl::StrCat(DescribeTensor(t->desc), " at offset ", offset,
                                                   " does not fit a buffer of ", buffer.size(),
                                                   " bytes"));
  }
  return t;
}

absl::StatusOr<Tensor> Tensor::Host(void* data, DType dtype, absl::Span<const int64_t> shape) {
  return Make(data, nullptr, dtype, shape, Device{}, MemoryKind::kHostOther);
}

absl::StatusOr<Tensor> Tensor::Cuda(void* data, DType dtype, absl::Span<const int64_t> shape) {
  auto allocation = cuda::AllocationOf(data);
  if (!allocation.ok()) return allocation.status();
  auto device = DeviceOf(allocation->device);
  if (!device.ok()) return device.status();
  return Make(data, nullptr, dtype, shape, *std::move(device), MemoryKind::kCudaIpc);
}

namespace internal {

CallRuntime::CallRuntime(Client& client)
    : client_(client),
      host_(
          "host",
          [&client](size_t bytes) -> absl::StatusOr<std::shared_ptr<Buffer>> {
            auto b = client.AllocateHost(bytes);
            if (!b.ok()) return b.status();
            return std::make_shared<HostBuffer>(*std::move(b));
          },
          kHostArena, kHostMax) {}

MemoryPool& CallRuntime::GpuPool(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& pool = gpu_pools_[device];
  if (!pool) {
    pool = std::make_unique<MemoryPool>(
        absl::StrCat("GPU ", device),
        [this, device](size_t bytes) -> absl::StatusOr<std::shared_ptr<Buffer>> {
          auto b = client_.AllocateCuda(bytes, device);
          if (!b.ok()) return b.status();
          return std::make_shared<CudaBuffer>(*std::move(b));
        },
        kGpuArena, kGpuMax);
  }
  return *pool;
}

absl::StatusOr<std::shared_ptr<const Buffer>> CallRuntime::ReceiveArea(uint32_t slot_bytes,
                                                                       uint32_t slots) {
  // Not mu_: SetReceiveArea's wait runs due callbacks on this thread, and a
  // reply landing in pool memory takes mu_.
  std::lock_guard<std::mutex> once(area_setup_mu_);
  if (auto area = Area()) return area;
  {
    std::lock_guard<AdaptiveMutex> ring(client_.session_->ring_mu);
    if (client_.session_->area != nullptr) return nullptr;
  }
  if (slot_bytes == 0 || slots == 0) {
    return absl::InvalidArgumentError("a receive area has at least one slot of at least one byte");
  }
  auto buffer = client_.AllocateHost(size_t{slot_bytes} * slots);
  if (!buffer.ok()) return buffer.status();
  auto area = std::make_shared<HostBuffer>(*std::move(buffer));
  auto made = client_.SetReceiveArea(*area, slot_bytes);
  if (!made.ok()) return made.status();
  std::lock_guard<std::mutex> lock(mu_);
  area_ = std::move(area);
  return area_;
}

std::shared_ptr<const Buffer> CallRuntime::Area() {
  std::lock_guard<std::mutex> lock(mu_);
  return area_;
}

absl::Status CallRuntime::CheckWritable(const Tensor& tensor, absl::string_view what) {
  if (tensor.buffer != nullptr || tensor.on_gpu()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what,
      " must be in registered memory (Client::AllocateHost) or on a GPU: it is written in "
      "place"));
}

namespace {

// INVALID_ARGUMENT unless `bytes` from `tensor.data` lie within its buffer
// (one it has) or, without one, it has a data pointer.
absl::Status CheckBytes(const Tensor& tensor, uint64_t bytes) {
  if (tensor.buffer != nullptr) {
    const auto* base = static_cast<const uint8_t*>(tensor.buffer->data());
    const auto* at = static_cast<const uint8_t*>(tensor.data);
    if (at < base || static_cast<size_t>(at - base) > tensor.buffer->size() ||
        bytes > tensor.buffer->size() - static_cast<size_t>(at - base)) {
      return absl::InvalidArgumentError(absl::StrCat(DescribeTensor(tensor.desc),
                                                     " lies outside its buffer of ",
                                                     tensor.buffer->size(), " bytes"));
    }
  } else if (bytes > 0 && tensor.data == nullptr && !tensor.on_gpu()) {
    return absl::InvalidArgumentError(
        absl::StrCat(DescribeTensor(tensor.desc), " has no data pointer"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::pair<const uint8_t*, uint64_t>> CallRuntime::HostBytes(const Tensor& tensor,
                                                                           uint64_t at_most) {
  auto bytes = TensorBytes(tensor.desc);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0 || *bytes > at_most) return std::pair<const uint8_t*, uint64_t>{nullptr, *bytes};
  if (auto st = CheckBytes(tensor, *bytes); !st.ok()) return st;
  return std::pair<const uint8_t*, uint64_t>{static_cast<const uint8_t*>(tensor.data), *bytes};
}

absl::StatusOr<Source> CallRuntime::Resolve(const Tensor& tensor) {
  auto bytes = TensorBytes(tensor.desc);
  if (!bytes.ok()) return bytes.status();
  if (auto st = CheckBytes(tensor, *bytes); !st.ok()) return st;
  if (tensor.buffer != nullptr) {
    const auto* at = static_cast<const uint8_t*>(tensor.data);
    return Source{tensor.buffer,
                  static_cast<size_t>(at - static_cast<const uint8_t*>(tensor.buffer->data())),
                  *bytes, tensor.owner};
  }
  if (tensor.on_gpu()) return ResolveCuda(tensor, *bytes);
  auto block = host_.Get(*bytes);
  if (!block.ok()) return block.status();
  if (*bytes > 0) std::memcpy((*block)->data, tensor.data, *bytes);
  const Block& b = **block;
  return Source{b.buffer, b.offset, *bytes, *std::move(block)};
}

absl::StatusOr<Source> CallRuntime::ResolveCuda(const Tensor& tensor, uint64_t bytes) {
  auto allocation = cuda::AllocationOf(tensor.data);
  if (!allocation.ok()) return allocation.status();
  auto handle = cuda::IpcHandleOf(allocation->base);
  if (!handle.ok()) return handle.status();
  const size_t offset = reinterpret_cast<uintptr_t>(tensor.data) - allocation->base;
  if (offset > allocation->size || bytes > allocation->size - offset) {
    return absl::InvalidArgumentError(absl::StrCat(DescribeTensor(tensor.desc),
                                                   " runs past its CUDA allocation of ",
                                                   allocation->size, " bytes"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  Registration& r = registrations_[allocation->base];
  if (!r.buffer || r.size != allocation->size || r.ipc_handle != *handle) {
    // A new allocation (or a new one where a freed one was): register it whole.
    auto buffer = client_.RegisterCuda(reinterpret_cast<void*>(allocation->base), allocation->size);
    if (!buffer.ok()) {
      registrations_.erase(allocation->base);
      return buffer.status();
    }
    r = Registration{allocation->size, *handle, std::make_shared<CudaBuffer>(*std::move(buffer))};
  }
  return Source{r.buffer.get(), offset, bytes, r.buffer};
}

absl::StatusOr<Tensor> CallRuntime::Land(const TensorDesc& desc, uint64_t bytes) {
  Tensor t{.desc = desc};
  t.desc.byte_offset = 0;
  MemoryPool* pool = &host_;
  if (desc.device.kind == DeviceKind::kCuda) {
    auto device = cuda::DeviceByBusId(desc.device.pci_bus_id);
    if (!device.ok() && cuda::Usable().ok()) device = 0;  // not here: this node's first GPU
    if (device.ok()) {
      pool = &GpuPool(*device);
      auto d = DeviceOf(*device);
      if (!d.ok()) return d.status();
      t.desc.device = *std::move(d);
      t.desc.memory = MemoryKind::kCudaVmm;
    } else {
      t.desc.device = Device{};  // no GPU here: host memory
    }
  }
  if (t.desc.device.kind == DeviceKind::kHost) t.desc.memory = MemoryKind::kHostMemfd;
  auto block = pool->Get(bytes);
  if (!block.ok()) return block.status();
  t.data = (*block)->data;
  t.buffer = (*block)->buffer;
  t.owner = *std::move(block);
  return t;
}

}  // namespace internal
}  // namespace axon
