// libaxon, part: memory shared with the daemon. Host memory is a sealed
// memfd; GPU memory is a legacy CUDA IPC handle of the allocation a pointer
// lies in, or a VMM allocation libaxon makes and passes as an fd.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "axon/client.h"
#include "client/lib/session.h"
#include "common/cuda/driver.h"
#include "common/errno_status.h"

namespace axon {

absl::StatusOr<uint64_t> Client::RegisterHost(int memfd, size_t length) {
  const int fds[] = {memfd};
  return session_->Register({.type = wire::SessionMessageType::kRegisterHost, .length = length},
                            fds);
}

absl::Status Client::Unregister(uint64_t region_id) { return session_->Unregister(region_id); }

absl::StatusOr<HostBuffer> Client::AllocateHost(size_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("cannot allocate 0 bytes");
  UniqueFd fd(::memfd_create("axon-host", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    return ErrnoStatus(errno, "ftruncate(memfd)");
  }
  // Sealed so the daemon's mapping can never lose its pages.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "fcntl(F_ADD_SEALS)");
  }
  void* data = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (data == MAP_FAILED) return ErrnoStatus(errno, "mmap(memfd)");
  auto region = RegisterHost(fd.get(), bytes);
  if (!region.ok()) {
    ::munmap(data, bytes);
    return region.status();
  }
  // The mapping and the fd go when the buffer does, after it unregisters.
  std::shared_ptr<void> owner(data, [bytes, fd = fd.Release()](void* p) {
    ::munmap(p, bytes);
    ::close(fd);
  });
  return HostBuffer(session_, data, bytes, *region, std::move(owner));
}

absl::StatusOr<CudaBuffer> Client::RegisterCuda(void* data, size_t length) {
  if (length == 0) return absl::InvalidArgumentError("cannot register 0 bytes");
  auto allocation = cuda::AllocationOf(data);
  if (!allocation.ok()) return allocation.status();
  auto handle = cuda::IpcHandleOf(allocation->base);
  if (!handle.ok()) return handle.status();
  auto bus_id = cuda::BusIdOf(allocation->device);
  if (!bus_id.ok()) return bus_id.status();
  auto region = session_->Register({.type = wire::SessionMessageType::kRegisterCuda,
                                    .length = length,
                                    .device = *bus_id,
                                    .handle = *handle,
                                    .offset = reinterpret_cast<uintptr_t>(data) - allocation->base},
                                   {});
  if (!region.ok()) return region.status();
  return CudaBuffer(session_, data, length, *region, allocation->device, nullptr);
}

absl::StatusOr<CudaBuffer> Client::AllocateCuda(size_t bytes, int device) {
  if (bytes == 0) return absl::InvalidArgumentError("cannot allocate 0 bytes");
  auto memory = cuda::DeviceMemory::CreateShareable(device, bytes);
  if (!memory.ok()) return memory.status();
  auto fd = memory->ExportFd();
  if (!fd.ok()) return fd.status();
  auto bus_id = cuda::BusIdOf(device);
  if (!bus_id.ok()) return bus_id.status();
  const int fds[] = {fd->get()};
  auto region = session_->Register({.type = wire::SessionMessageType::kRegisterCudaFd,
                                    .length = bytes,
                                    .device = *bus_id,
                                    .size = memory->size()},
                                   fds);
  if (!region.ok()) return region.status();
  auto owner = std::make_shared<cuda::DeviceMemory>(*std::move(memory));
  void* data = owner->data();
  return CudaBuffer(session_, data, bytes, *region, device, std::move(owner));
}

Buffer::Buffer(Buffer&& other) noexcept
    : session_(std::move(other.session_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      region_id_(std::exchange(other.region_id_, 0)),
      device_(std::exchange(other.device_, -1)),
      owner_(std::move(other.owner_)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    Release();
    session_ = std::move(other.session_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    region_id_ = std::exchange(other.region_id_, 0);
    device_ = std::exchange(other.device_, -1);
    owner_ = std::move(other.owner_);
  }
  return *this;
}

Buffer::~Buffer() { Release(); }

void Buffer::Release() {
  if (data_ == nullptr) return;
  if (session_) (void)session_->Unregister(region_id_);
  owner_.reset();  // after the daemon let go
  data_ = nullptr;
}

}  // namespace axon
