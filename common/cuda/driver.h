// The CUDA calls axond and libaxon share. The driver API (VMM, address
// ranges) is reached through the runtime's entry-point query, so nothing
// links libcuda and a machine without a driver still runs the binaries: every
// function here then fails with FAILED_PRECONDITION, saying why.
//
// Built without the CUDA toolkit, every function fails with UNIMPLEMENTED.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace axon::cuda {

inline constexpr size_t kIpcHandleBytes = 64;  // sizeof(cudaIpcMemHandle_t)

// OK when this process can use CUDA device memory: built with the toolkit,
// with a driver and at least one device.
absl::Status Usable();

// Makes `device` current on the calling thread (creating its primary
// context the first time).
absl::Status UseDevice(int device);

// Lets `device`'s context reach memory on `peer` directly (NVLink or PCIe
// peer to peer) in the copies it issues between the two: once per pair, and
// it stays. FailedPrecondition where the two cannot reach each other; the
// driver then stages such copies through host memory. Leaves `device`
// current.
absl::Status EnablePeerAccess(int device, int peer);

// The device (this process's ordinal) whose PCI bus id is `bus_id`, e.g.
// "0000:3b:00.0": ordinals differ between processes, bus ids do not.
absl::StatusOr<int> DeviceByBusId(const std::string& bus_id);
absl::StatusOr<std::string> BusIdOf(int device);

// The allocation a device pointer lies in.
struct Allocation {
  uintptr_t base = 0;
  size_t size = 0;
  int device = -1;
};
absl::StatusOr<Allocation> AllocationOf(const void* pointer);

// A legacy IPC handle (kIpcHandleBytes) for the allocation based at `base`.
absl::StatusOr<std::string> IpcHandleOf(uintptr_t base);

// Device memory this process mapped: a legacy IPC handle opened, a VMM
// allocation imported from a POSIX fd, or one created here and exported as
// a POSIX fd. Unmapped (the IPC handle closed, the VMM mapping released)
// exactly once, when destroyed; that may run on any thread.
class DeviceMemory {
 public:
  // Opens a legacy IPC handle on `device`. INVALID_ARGUMENT when the handle
  // does not open (garbage, another machine's, or this process's own).
  static absl::StatusOr<DeviceMemory> OpenIpc(int device, const std::string& handle);
  // Maps `size` bytes of the VMM allocation exported as `fd` on `device`.
  static absl::StatusOr<DeviceMemory> ImportFd(int device, int fd, size_t size);
  // Creates a VMM allocation of at least `size` bytes on `device` that can be
  // exported as a POSIX fd (ExportFd), mapped read-write here.
  static absl::StatusOr<DeviceMemory> CreateShareable(int device, size_t size);

  DeviceMemory() = default;
  DeviceMemory(DeviceMemory&& other) noexcept { *this = std::move(other); }
  DeviceMemory& operator=(DeviceMemory&& other) noexcept;
  ~DeviceMemory() { Reset(); }

  // A new fd for the VMM allocation (CreateShareable only).
  absl::StatusOr<UniqueFd> ExportFd() const;

  uint8_t* data() const { return reinterpret_cast<uint8_t*>(base_); }
  size_t size() const { return size_; }
  int device() const { return device_; }
  bool valid() const { return base_ != 0; }

 private:
  enum class Kind { kNone, kIpc, kVmm };
  void Reset();
  // kVmm with vmm_handle_ set: reserves `size` bytes of addresses, maps the
  // allocation there and lets device_ read and write it. A map failure of an
  // `imported` allocation is INVALID_ARGUMENT (the fd's allocation is smaller).
  absl::Status MapVmm(size_t size, size_t granularity, bool imported);

  Kind kind_ = Kind::kNone;
  uintptr_t base_ = 0;
  size_t size_ = 0;  // mapped bytes
  int device_ = -1;
  uint64_t vmm_handle_ = 0;  // CUmemGenericAllocationHandle (kVmm)
};

// Waits for all work queued so far on `stream` (a cudaStream_t; null is the
// legacy default stream).
absl::Status SynchronizeStream(void* stream);

// Pins [data, data + length) of host memory for the copy engines
// (cudaHostRegister), and undoes it.
absl::Status PinHost(void* data, size_t length);
void UnpinHost(void* data);

// Page-locked host memory: ordinary pages (mmap), pinned with
// cudaHostRegister, so UCX sees plain host memory it can read and write with
// any transport.
absl::StatusOr<void*> AllocatePinned(size_t bytes);
void FreePinned(void* data, size_t bytes);

// Device memory on the calling thread's current device (cudaMalloc): the
// daemon's own, which UCX can send from and receive into.
absl::StatusOr<void*> AllocateDevice(size_t bytes);
void FreeDevice(void* data, size_t bytes);

// The devices on which this process has an active primary context (each
// costs GPU memory; axond should have one only where its clients are).
std::vector<int> DevicesWithContext();

// True when contexts on `device` are shared through MPS (the CUDA
// Multi-Process Service): work from different processes then runs side by
// side. Without it, processes using one GPU take turns by time slice, and
// each switch costs about 140 us on an H100 (docs/PERFORMANCE.md).
bool SharedByMps(int device);

// True for device (or managed) memory, false for host memory, whatever
// allocated it.
bool IsDevicePointer(const void* pointer);

}  // namespace axon::cuda
