#include "common/cuda/driver.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/annotated_mutex.h"

#ifdef AXON_HAVE_CUDA
#include <cuda.h>
#include <cuda_runtime_api.h>
#endif

namespace axon::cuda {

#ifdef AXON_HAVE_CUDA
namespace {

absl::Status RuntimeError(cudaError_t err, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

absl::Status DriverError(CUresult err, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, " failed (CUresult ", static_cast<int>(err), ")"));
}

// The driver functions used here, looked up once through the runtime.
struct Driver {
  decltype(&cuMemGetAddressRange) get_address_range = nullptr;
  decltype(&cuMemCreate) create = nullptr;
  decltype(&cuMemExportToShareableHandle) export_handle = nullptr;
  decltype(&cuMemImportFromShareableHandle) import_handle = nullptr;
  decltype(&cuMemAddressReserve) reserve = nullptr;
  decltype(&cuMemAddressFree) address_free = nullptr;
  decltype(&cuMemMap) map = nullptr;
  decltype(&cuMemUnmap) unmap = nullptr;
  decltype(&cuMemSetAccess) set_access = nullptr;
  decltype(&cuMemRelease) release = nullptr;
  decltype(&cuMemGetAllocationGranularity) granularity = nullptr;
  decltype(&cuDevicePrimaryCtxGetState) context_state = nullptr;
  decltype(&cuDeviceGet) device_get = nullptr;
  absl::Status status;
};

template <typename F>
void Load(Driver& d, const char* symbol, F& fn) {
  if (!d.status.ok()) return;
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found{};
  cudaError_t err = cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &found);
  if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || p == nullptr) {
    d.status = absl::FailedPreconditionError(
        absl::StrCat("the CUDA driver has no ", symbol,
                     err != cudaSuccess ? absl::StrCat(": ", cudaGetErrorString(err)) : ""));
    return;
  }
  fn = reinterpret_cast<F>(p);
}

const Driver& GetDriver() {
  static const Driver* driver = [] {
    auto* d = new Driver;
    Load(*d, "cuMemGetAddressRange", d->get_address_range);
    Load(*d, "cuMemCreate", d->create);
    Load(*d, "cuMemExportToShareableHandle", d->export_handle);
    Load(*d, "cuMemImportFromShareableHandle", d->import_handle);
    Load(*d, "cuMemAddressReserve", d->reserve);
    Load(*d, "cuMemAddressFree", d->address_free);
    Load(*d, "cuMemMap", d->map);
    Load(*d, "cuMemUnmap", d->unmap);
    Load(*d, "cuMemSetAccess", d->set_access);
    Load(*d, "cuMemRelease", d->release);
    Load(*d, "cuMemGetAllocationGranularity", d->granularity);
    Load(*d, "cuDevicePrimaryCtxGetState", d->context_state);
    Load(*d, "cuDeviceGet", d->device_get);
    return d;
  }();
  return *driver;
}

CUmemAllocationProp ShareableProp(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  return prop;
}

}  // namespace

absl::Status Usable() {
  static const absl::Status status = [] {
    int count = 0;
    if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
      return absl::FailedPreconditionError(
          absl::StrCat("no usable CUDA device: ", cudaGetErrorString(err)));
    }
    if (count == 0) return absl::FailedPreconditionError("no CUDA device found");
    return absl::OkStatus();
  }();
  return status;
}

absl::Status UseDevice(int device) {
  if (auto st = Usable(); !st.ok()) return st;
  if (cudaError_t err = cudaSetDevice(device); err != cudaSuccess) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA device ", device, ": ", cudaGetErrorString(err)));
  }
  return absl::OkStatus();
}

absl::Status EnablePeerAccess(int device, int peer) {
  static auto* mu = new Mutex;  // not absl::Mutex: common/annotated_mutex.h says why
  static auto* done = new std::map<std::pair<int, int>, absl::Status>();
  MutexLock lock(mu);
  if (auto it = done->find({device, peer}); it != done->end()) {
    if (auto st = UseDevice(device); !st.ok()) return st;
    return it->second;
  }
  if (auto st = UseDevice(device); !st.ok()) return st;
  int can = 0;
  absl::Status result;
  if (cudaError_t err = cudaDeviceCanAccessPeer(&can, device, peer); err != cudaSuccess || !can) {
    (void)cudaGetLastError();
    result = absl::FailedPreconditionError(
        absl::StrCat("GPU ", device, " cannot reach GPU ", peer, "'s memory directly"));
  } else if (cudaError_t e = cudaDeviceEnablePeerAccess(peer, 0);
             e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) {
    (void)cudaGetLastError();
    result = RuntimeError(e, absl::StrCat("peer access from GPU ", device, " to GPU ", peer));
  } else {
    (void)cudaGetLastError();  // clears cudaErrorPeerAccessAlreadyEnabled
  }
  done->emplace(std::pair{device, peer}, result);
  return result;
}

absl::StatusOr<int> DeviceByBusId(const std::string& bus_id) {
  if (auto st = Usable(); !st.ok()) return st;
  int device = -1;
  if (cudaError_t err = cudaDeviceGetByPCIBusId(&device, bus_id.c_str()); err != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::InvalidArgumentError(
        absl::StrCat("no CUDA device with PCI bus id '", bus_id, "' here"));
  }
  return device;
}

absl::StatusOr<std::string> BusIdOf(int device) {
  if (auto st = Usable(); !st.ok()) return st;
  char id[32] = {};
  if (cudaError_t err = cudaDeviceGetPCIBusId(id, sizeof(id), device); err != cudaSuccess) {
    return RuntimeError(err, absl::StrCat("the PCI bus id of device ", device));
  }
  return std::string(id);
}

bool IsDevicePointer(const void* pointer) {
  if (!Usable().ok()) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, pointer) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

absl::StatusOr<Allocation> AllocationOf(const void* pointer) {
  if (auto st = Usable(); !st.ok()) return st;
  const Driver& d = GetDriver();
  if (!d.status.ok()) return d.status;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, pointer) != cudaSuccess ||
      attr.type != cudaMemoryTypeDevice) {
    (void)cudaGetLastError();
    return absl::InvalidArgumentError("the pointer is not CUDA device memory");
  }
  if (auto st = UseDevice(attr.device); !st.ok()) return st;
  CUdeviceptr base = 0;
  size_t size = 0;
  if (CUresult r = d.get_address_range(&base, &size, reinterpret_cast<CUdeviceptr>(pointer));
      r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemGetAddressRange");
  }
  return Allocation{.base = static_cast<uintptr_t>(base), .size = size, .device = attr.device};
}

absl::StatusOr<std::string> IpcHandleOf(uintptr_t base) {
  cudaIpcMemHandle_t handle;
  if (cudaError_t err = cudaIpcGetMemHandle(&handle, reinterpret_cast<void*>(base));
      err != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::InvalidArgumentError(absl::StrCat(
        "no CUDA IPC handle for this memory (", cudaGetErrorString(err),
        "); memory from cudaMalloc has one, VMM memory goes through AllocateCuda instead"));
  }
  static_assert(sizeof(handle) == kIpcHandleBytes);
  return std::string(reinterpret_cast<const char*>(&handle), sizeof(handle));
}

absl::StatusOr<DeviceMemory> DeviceMemory::OpenIpc(int device, const std::string& handle) {
  if (handle.size() != kIpcHandleBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a CUDA IPC handle has ", kIpcHandleBytes, " bytes, not ", handle.size()));
  }
  if (auto st = UseDevice(device); !st.ok()) return st;
  cudaIpcMemHandle_t h;
  std::memcpy(&h, handle.data(), sizeof(h));
  void* base = nullptr;
  if (cudaError_t err = cudaIpcOpenMemHandle(&base, h, cudaIpcMemLazyEnablePeerAccess);
      err != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::InvalidArgumentError(
        absl::StrCat("the CUDA IPC handle does not open: ", cudaGetErrorString(err)));
  }
  DeviceMemory memory;
  memory.kind_ = Kind::kIpc;
  memory.base_ = reinterpret_cast<uintptr_t>(base);
  memory.device_ = device;
  auto allocation = AllocationOf(base);
  if (!allocation.ok()) return allocation.status();  // memory closes the handle
  memory.size_ = allocation->size;
  return memory;
}

absl::StatusOr<DeviceMemory> DeviceMemory::ImportFd(int device, int fd, size_t size) {
  if (auto st = UseDevice(device); !st.ok()) return st;
  const Driver& d = GetDriver();
  if (!d.status.ok()) return d.status;
  if (size == 0) return absl::InvalidArgumentError("a VMM region must hold at least one byte");
  CUmemAllocationProp prop = ShareableProp(device);
  size_t granularity = 0;
  if (CUresult r = d.granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
      r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemGetAllocationGranularity");
  }
  if (size % granularity != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a VMM allocation's size is a multiple of ",
                                                   granularity, " bytes; ", size, " is not"));
  }
  CUmemGenericAllocationHandle handle = 0;
  if (CUresult r = d.import_handle(&handle, reinterpret_cast<void*>(static_cast<intptr_t>(fd)),
                                   CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
      r != CUDA_SUCCESS) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the fd is not an exported CUDA VMM allocation (CUresult ", static_cast<int>(r), ")"));
  }
  DeviceMemory memory;
  memory.kind_ = Kind::kVmm;
  memory.device_ = device;
  memory.vmm_handle_ = handle;
  if (auto st = memory.MapVmm(size, granularity, /*imported=*/true); !st.ok()) return st;
  return memory;
}

absl::Status DeviceMemory::MapVmm(size_t size, size_t granularity, bool imported) {
  const Driver& d = GetDriver();
  CUdeviceptr base = 0;
  if (CUresult r = d.reserve(&base, size, granularity, 0, 0); r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemAddressReserve");
  }
  if (CUresult r = d.map(base, size, 0, vmm_handle_, 0); r != CUDA_SUCCESS) {
    d.address_free(base, size);
    if (!imported) return DriverError(r, "cuMemMap");
    return absl::InvalidArgumentError(absl::StrCat("mapping ", size,
                                                   " bytes of the VMM allocation failed (CUresult ",
                                                   static_cast<int>(r), "): is it that large?"));
  }
  base_ = static_cast<uintptr_t>(base);
  size_ = size;
  // Its own device, and every GPU that can reach it directly (a peer copy
  // to or from it then goes over NVLink or PCIe, not through the host).
  std::vector<CUmemAccessDesc> access(1);
  access[0].location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  access[0].location.id = device_;
  access[0].flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  for (int other = 0; other < devices; ++other) {
    int can = 0;
    if (other == device_ || cudaDeviceCanAccessPeer(&can, other, device_) != cudaSuccess || !can) {
      continue;
    }
    CUmemAccessDesc peer = access[0];
    peer.location.id = other;
    access.push_back(peer);
  }
  (void)cudaGetLastError();
  CUresult r = d.set_access(base, size, access.data(), access.size());
  if (r != CUDA_SUCCESS && access.size() > 1) {  // a peer refused (ACS, IOMMU): own device only
    r = d.set_access(base, size, access.data(), 1);
  }
  if (r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemSetAccess");  // Reset unmaps and frees it
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceMemory> DeviceMemory::CreateShareable(int device, size_t size) {
  if (auto st = UseDevice(device); !st.ok()) return st;
  const Driver& d = GetDriver();
  if (!d.status.ok()) return d.status;
  CUmemAllocationProp prop = ShareableProp(device);
  size_t granularity = 0;
  if (CUresult r = d.granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
      r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemGetAllocationGranularity");
  }
  const size_t rounded = (std::max<size_t>(size, 1) + granularity - 1) / granularity * granularity;
  CUmemGenericAllocationHandle handle = 0;
  if (CUresult r = d.create(&handle, rounded, &prop, 0); r != CUDA_SUCCESS) {
    return r == CUDA_ERROR_OUT_OF_MEMORY ? absl::ResourceExhaustedError(absl::StrCat(
                                               "no ", rounded, " bytes free on GPU ", device))
                                         : DriverError(r, "cuMemCreate");
  }
  DeviceMemory memory;
  memory.kind_ = Kind::kVmm;
  memory.device_ = device;
  memory.vmm_handle_ = handle;
  if (auto st = memory.MapVmm(rounded, granularity, /*imported=*/false); !st.ok()) return st;
  return memory;
}

absl::StatusOr<UniqueFd> DeviceMemory::ExportFd() const {
  if (kind_ != Kind::kVmm) return absl::FailedPreconditionError("not a VMM allocation");
  const Driver& d = GetDriver();
  int fd = -1;
  if (CUresult r = d.export_handle(&fd, vmm_handle_, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
      r != CUDA_SUCCESS) {
    return DriverError(r, "cuMemExportToShareableHandle");
  }
  return UniqueFd(fd);
}

DeviceMemory& DeviceMemory::operator=(DeviceMemory&& other) noexcept {
  if (this != &other) {
    Reset();
    kind_ = std::exchange(other.kind_, Kind::kNone);
    base_ = std::exchange(other.base_, 0);
    size_ = std::exchange(other.size_, 0);
    device_ = std::exchange(other.device_, -1);
    vmm_handle_ = std::exchange(other.vmm_handle_, 0);
  }
  return *this;
}

void DeviceMemory::Reset() {
  if (kind_ == Kind::kNone) return;
  (void)cudaSetDevice(device_);
  if (kind_ == Kind::kIpc && base_ != 0) {
    (void)cudaIpcCloseMemHandle(reinterpret_cast<void*>(base_));
  } else if (kind_ == Kind::kVmm) {
    const Driver& d = GetDriver();
    if (base_ != 0 && size_ != 0) d.unmap(static_cast<CUdeviceptr>(base_), size_);
    if (base_ != 0) d.address_free(static_cast<CUdeviceptr>(base_), size_);
    if (vmm_handle_ != 0) d.release(vmm_handle_);
  }
  kind_ = Kind::kNone;
  base_ = 0;
}

std::vector<int> DevicesWithContext() {
  std::vector<int> out;
  int count = 0;
  if (!Usable().ok() || cudaGetDeviceCount(&count) != cudaSuccess) return out;
  const Driver& d = GetDriver();
  if (!d.status.ok()) return out;
  for (int i = 0; i < count; ++i) {
    CUdevice device;
    unsigned flags = 0;
    int active = 0;
    if (d.device_get(&device, i) == CUDA_SUCCESS &&
        d.context_state(device, &flags, &active) == CUDA_SUCCESS && active) {
      out.push_back(i);
    }
  }
  return out;
}

bool SharedByMps(int device) {
  int mps = 0;
  if (!Usable().ok() ||
      cudaDeviceGetAttribute(&mps, cudaDevAttrMpsEnabled, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return mps != 0;
}

absl::Status PinHost(void* data, size_t length) {
  if (auto st = Usable(); !st.ok()) return st;
  if (cudaError_t err = cudaHostRegister(data, length, cudaHostRegisterDefault);
      err != cudaSuccess) {
    (void)cudaGetLastError();
    return RuntimeError(err, "cudaHostRegister");
  }
  return absl::OkStatus();
}

void UnpinHost(void* data) { (void)cudaHostUnregister(data); }

absl::StatusOr<void*> AllocatePinned(size_t bytes) {
  if (auto st = Usable(); !st.ok()) return st;
  void* data = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat("no ", bytes, " bytes of host memory"));
  }
  if (cudaError_t err = cudaHostRegister(data, bytes, cudaHostRegisterPortable);
      err != cudaSuccess) {
    (void)cudaGetLastError();
    ::munmap(data, bytes);
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot pin ", bytes, " bytes of host memory: ", cudaGetErrorString(err)));
  }
  return data;
}

void FreePinned(void* data, size_t bytes) {
  (void)cudaHostUnregister(data);
  ::munmap(data, bytes);
}

absl::StatusOr<void*> AllocateDevice(size_t bytes) {
  if (auto st = Usable(); !st.ok()) return st;
  void* data = nullptr;
  if (cudaError_t err = cudaMalloc(&data, bytes); err != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes of GPU memory: ", cudaGetErrorString(err)));
  }
  return data;
}

void FreeDevice(void* data, size_t) { (void)cudaFree(data); }

absl::Status SynchronizeStream(void* stream) {
  if (cudaError_t err = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
      err != cudaSuccess) {
    return RuntimeError(err, "synchronizing the producer's CUDA stream");
  }
  return absl::OkStatus();
}

#else  // no CUDA toolkit

namespace {
absl::Status NoCuda() { return absl::UnimplementedError("axon was built without CUDA"); }
}  // namespace

absl::Status Usable() { return NoCuda(); }
absl::Status UseDevice(int) { return NoCuda(); }
absl::Status EnablePeerAccess(int, int) { return NoCuda(); }
absl::StatusOr<int> DeviceByBusId(const std::string&) { return NoCuda(); }
absl::StatusOr<std::string> BusIdOf(int) { return NoCuda(); }
bool IsDevicePointer(const void*) { return false; }
absl::StatusOr<Allocation> AllocationOf(const void*) { return NoCuda(); }
absl::StatusOr<std::string> IpcHandleOf(uintptr_t) { return NoCuda(); }
absl::StatusOr<DeviceMemory> DeviceMemory::OpenIpc(int, const std::string&) { return NoCuda(); }
absl::StatusOr<DeviceMemory> DeviceMemory::ImportFd(int, int, size_t) { return NoCuda(); }
absl::StatusOr<DeviceMemory> DeviceMemory::CreateShareable(int, size_t) { return NoCuda(); }
absl::StatusOr<UniqueFd> DeviceMemory::ExportFd() const { return NoCuda(); }
absl::Status DeviceMemory::MapVmm(size_t, size_t, bool) { return NoCuda(); }
DeviceMemory& DeviceMemory::operator=(DeviceMemory&& other) noexcept {
  std::swap(base_, other.base_);
  return *this;
}
void DeviceMemory::Reset() {}
absl::Status SynchronizeStream(void*) { return NoCuda(); }
absl::Status PinHost(void*, size_t) { return NoCuda(); }
void UnpinHost(void*) {}
std::vector<int> DevicesWithContext() { return {}; }
bool SharedByMps(int) { return false; }
absl::StatusOr<void*> AllocatePinned(size_t) { return NoCuda(); }
void FreePinned(void*, size_t) {}
absl::StatusOr<void*> AllocateDevice(size_t) { return NoCuda(); }
void FreeDevice(void*, size_t) {}

#endif

}  // namespace axon::cuda
