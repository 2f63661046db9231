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

std::shared_ptr<const cuda::DeviceMemory> CudaRegistry::Share(cuda::DeviceMemory memory) {
  open_now_->fetch_add(1);
  // The last holder closes it, on whatever thread that is.
  return std::shared_ptr<const cuda::DeviceMemory>(
      new cuda::DeviceMemory(std::move(memory)),
      [open_now = open_now_](const cuda::DeviceMemory* m) {
        delete m;
        open_now->fetch_sub(1);
      });
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
  std::shared_ptr<const cuda::DeviceMemory> memory;
  {
    // Opening under the lock: two registrations of one allocation must not
    // both open it (CUDA refuses the second open in one context).
    std::lock_guard<std::mutex> lock(mu_);
    auto device = Device(bus_id);
    if (!device.ok()) return device.status();
    auto& slot = ipc_[{*device, handle}];
    memory = slot.lock();
    if (memory) {
      ++stats_.ipc_reuses;
    } else {
      auto opened = cuda::DeviceMemory::OpenIpc(*device, handle);
      if (!opened.ok()) {
        ipc_.erase({*device, handle});
        return opened.status();
      }
      memory = Share(*std::move(opened));
      slot = memory;
      ++stats_.ipc_opens;
    }
    // Forget mappings nobody holds any more.
    std::erase_if(ipc_, [](const auto& entry) { return entry.second.expired(); });
  }
  if (auto st = CheckBounds(offset, length, memory->size()); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.registrations;
  return std::shared_ptr<Region>(std::make_shared<CudaRegion>(std::move(memory), offset, length));
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
  auto memory = Share(*std::move(imported));
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
