#include "daemon/memory/cuda_region.h"

#include "absl/strings/str_cat.h"

namespace axon::daemon {
namespace {

absl::Status CheckBounds(uint64_t offset, uint64_t length, uint64_t size) {
  if (length == 0) return absl::InvalidArgumentError("a region must hold at least one byte");
  if (offset > size || length > size - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bytes [", offset, ", +", length, ") lie outside the GPU allocation of ", size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

std::shared_ptr<const cuda::DeviceMemory> IpcMappings::Share(
    cuda::DeviceMemory memory, const std::shared_ptr<std::atomic<uint64_t>>& open_now) {
  open_now->fetch_add(1);
  // The last holder closes it, on whatever thread that is.
  return std::shared_ptr<const cuda::DeviceMemory>(new cuda::DeviceMemory(std::move(memory)),
                                                   [open_now](const cuda::DeviceMemory* m) {
                                                     delete m;
                                                     open_now->fetch_sub(1);
                                                   });
}

absl::StatusOr<std::shared_ptr<const cuda::DeviceMemory>> IpcMappings::Open(
    int device, const std::string& handle, bool* opened) {
  // Opening under the lock: two registrations of one allocation must not
  // both open it (CUDA refuses the second open in one context).
  std::lock_guard<std::mutex> lock(mu_);
  *opened = false;
  auto& slot = open_[{device, handle}];
  std::shared_ptr<const cuda::DeviceMemory> memory = slot.lock();
  if (!memory) {
    auto mapped = cuda::DeviceMemory::OpenIpc(device, handle);
    if (!mapped.ok()) {
      open_.erase({device, handle});
      return mapped.status();
    }
    memory = Share(*std::move(mapped), open_now_);
    slot = memory;
    *opened = true;
  }
  // Forget mappings nobody holds any more.
  std::erase_if(open_, [](const auto& entry) { return entry.second.expired(); });
  return memory;
}

absl::StatusOr<uint8_t*> CudaRegion::AddressOn(int device, uint8_t* p) {
  if (device == this->device() || !ipc_) return p;
  auto& view = on_devices_[device];
  if (!view) {
    bool opened;
    auto mapped = ipc_->Open(device, handle_, &opened);
    if (!mapped.ok()) {
      on_devices_.erase(device);
      return mapped.status();
    }
    view = *std::move(mapped);
  }
  return view->data() + (p - memory_->data());
}

std::optional<IpcSource> CudaRegion::IpcSourceOf(const uint8_t* p) const {
  if (!ipc_ || handle_.empty()) return std::nullopt;  // VMM memory
  return IpcSource{handle_, static_cast<uint64_t>(p - memory_->data()), memory_};
}

absl::StatusOr<int> CudaRegistry::Device(const std::string& bus_id) {
  auto device = cuda::DeviceByBusId(bus_id);
  if (!device.ok()) return device.status();
  stats_.devices.insert(*device);
  return device;
}

absl::StatusOr<std::shared_ptr<Region>> CudaRegistry::OpenIpc(const std::string& bus_id,
                                                              const std::string& handle,
                                                              uint64_t offset, uint64_t length) {
  int device;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto d = Device(bus_id);
    if (!d.ok()) return d.status();
    device = *d;
  }
  bool opened = false;
  auto mapped = ipc_->Open(device, handle, &opened);
  if (!mapped.ok()) return mapped.status();
  std::shared_ptr<const cuda::DeviceMemory> memory = *std::move(mapped);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++(opened ? stats_.ipc_opens : stats_.ipc_reuses);
  }
  if (auto st = CheckBounds(offset, length, memory->size()); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.registrations;
  return std::shared_ptr<Region>(
      std::make_shared<CudaRegion>(std::move(memory), offset, length, ipc_, handle));
}

absl::StatusOr<std::shared_ptr<Region>> CudaRegistry::ImportFd(const std::string& bus_id,
                                                               UniqueFd fd, uint64_t size,
                                                               uint64_t offset, uint64_t length) {
  if (!fd.valid()) return absl::InvalidArgumentError("no fd came with the request");
  if (auto st = CheckBounds(offset, length, size); !st.ok()) return st;
  int device;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto d = Device(bus_id);
    if (!d.ok()) return d.status();
    device = *d;
  }
  auto imported = cuda::DeviceMemory::ImportFd(device, fd.get(), size);
  if (!imported.ok()) return imported.status();
  auto memory = IpcMappings::Share(*std::move(imported), open_now_);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.vmm_imports;
  ++stats_.registrations;
  return std::shared_ptr<Region>(std::make_shared<CudaRegion>(std::move(memory), offset, length));
}

CudaRegistryStats CudaRegistry::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  CudaRegistryStats s = stats_;
  s.open_now = open_now_->load();
  return s;
}

}  // namespace axon::daemon
