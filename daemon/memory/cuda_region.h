// GPU memory a client registered, opened in axond. CudaRegistry opens each
// allocation once per device and shares the mapping between every region
// cut from it; the mapping closes (the IPC handle, or the imported VMM
// allocation) when the last region and the last operation holding one let go,
// so a dead client's GPU memory is freed once its operations have finished.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/cuda/driver.h"
#include "common/unique_fd.h"
#include "daemon/memory/region.h"

namespace axon::daemon {

// Legacy IPC mappings, one per (device, handle): CUDA opens a handle once
// per context. Shared by the registry and the IPC regions it cut, which open
// their allocation on a second device for peer copies. Thread-safe.
class IpcMappings {
 public:
  explicit IpcMappings(std::shared_ptr<std::atomic<uint64_t>> open_now)
      : open_now_(std::move(open_now)) {}
  // `handle` mapped on `device`: the mapping someone holds, or a new one
  // (`*opened` set). A mapping closes when its last holder lets go.
  absl::StatusOr<std::shared_ptr<const cuda::DeviceMemory>> Open(int device,
                                                                 const std::string& handle,
                                                                 bool* opened);
  // Counted in `open_now` until the last holder lets go.
  static std::shared_ptr<const cuda::DeviceMemory> Share(
      cuda::DeviceMemory memory, const std::shared_ptr<std::atomic<uint64_t>>& open_now);

 private:
  std::mutex mu_;
  std::map<std::pair<int, std::string>, std::weak_ptr<const cuda::DeviceMemory>> open_;
  std::shared_ptr<std::atomic<uint64_t>> open_now_;
};

class CudaRegion final : public Region {
 public:
  // `ipc` and `handle`: where `memory` came from, for legacy IPC memory
  // (null for VMM memory, which every GPU that can reach it maps).
  CudaRegion(std::shared_ptr<const cuda::DeviceMemory> memory, uint64_t offset, uint64_t length,
             std::shared_ptr<IpcMappings> ipc = nullptr, std::string handle = {})
      : Region(memory->data() + offset, length, MemoryKind::kCuda, memory->device()),
        memory_(std::move(memory)),
        ipc_(std::move(ipc)),
        handle_(std::move(handle)) {}

  absl::StatusOr<uint8_t*> AddressOn(int device, uint8_t* p) override;
  std::optional<IpcSource> IpcSourceOf(const uint8_t* p) const override;

 private:
  std::shared_ptr<const cuda::DeviceMemory> memory_;
  std::shared_ptr<IpcMappings> ipc_;
  std::string handle_;
  std::map<int, std::shared_ptr<const cuda::DeviceMemory>> on_devices_;  // peer mappings
};

// What CudaRegistry did, for `axonctl stats`.
struct CudaRegistryStats {
  uint64_t registrations = 0;  // CUDA regions registered
  uint64_t ipc_opens = 0;      // legacy IPC handles opened
  uint64_t ipc_reuses = 0;     // registrations served by an allocation open already
  uint64_t vmm_imports = 0;    // VMM allocations imported from an fd
  uint64_t open_now = 0;       // allocations mapped now
  std::set<int> devices;       // devices the daemon has touched
};

class CudaRegistry {
 public:
  // Thread-safe. A region of [offset, offset + length) of the allocation
  // behind a legacy IPC handle, on the device with PCI bus id `bus_id`.
  absl::StatusOr<std::shared_ptr<Region>> OpenIpc(const std::string& bus_id,
                                                  const std::string& handle, uint64_t offset,
                                                  uint64_t length);
  // The same for a VMM allocation of `size` bytes exported as `fd`.
  absl::StatusOr<std::shared_ptr<Region>> ImportFd(const std::string& bus_id, UniqueFd fd,
                                                   uint64_t size, uint64_t offset, uint64_t length);
  CudaRegistryStats stats() const;
  // The daemon's legacy IPC mappings, for memory opened by other means (a
  // peer daemon's handles) to share: one mapping per allocation and device.
  std::shared_ptr<IpcMappings> ipc() const { return ipc_; }

 private:
  absl::StatusOr<int> Device(const std::string& bus_id);  // mu_ held
  mutable std::mutex mu_;
  CudaRegistryStats stats_;
  // Both outlive the registry: regions can.
  std::shared_ptr<std::atomic<uint64_t>> open_now_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<IpcMappings> ipc_ = std::make_shared<IpcMappings>(open_now_);
};

}  // namespace axon::daemon
