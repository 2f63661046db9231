// A client's memory as the daemon sees it: host memory it mapped (HostRegion)
// or GPU memory it opened (CudaRegion). The engine moves bytes between
// regions; the kind says whether a plain memcpy will do.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace axon::daemon {

enum class MemoryKind : uint8_t { kHost, kCuda };

// Where bytes of a region lie for another process on this host: the legacy
// CUDA IPC handle of their allocation and their offset in it. `mapping`
// expires once this daemon's own mapping of the allocation closes (the
// client let go of it).
struct IpcSource {
  std::string handle;
  uint64_t offset = 0;
  std::weak_ptr<const void> mapping;
};

class Region {
 public:
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // Host regions: an address in the daemon. CUDA regions: a device address
  // in the daemon's mapping of the client's allocation.
  uint8_t* data() const { return data_; }
  uint64_t length() const { return length_; }
  MemoryKind kind() const { return kind_; }
  bool on_gpu() const { return kind_ == MemoryKind::kCuda; }
  int device() const { return device_; }  // -1 for host memory

  // Host regions: pins the pages for the GPU's copy engines (once; kept
  // until the region goes). A no-op for CUDA regions and without CUDA.
  virtual void PinForGpu() {}

  // `p`, an address in this region, as a copy issued on GPU `device` must
  // name it: `p` itself, except in legacy IPC memory of another GPU, which
  // `device` maps on its own (a peer mapping, opened on first use and kept
  // while the region lives) so the copy goes GPU to GPU, not through host
  // memory. Engine thread.
  virtual absl::StatusOr<uint8_t*> AddressOn(int /*device*/, uint8_t* p) { return p; }

  // `p`, an address in this region, as another process on this host can
  // open it: only legacy IPC memory can be (not host or VMM memory).
  virtual std::optional<IpcSource> IpcSourceOf(const uint8_t* /*p*/) const { return std::nullopt; }

  // What the peer plane registered of this region for UCX RMA (a memory
  // handle and its packed key, made by the first one-sided transfer from it:
  // daemon/transfer/window_rma), kept while the region lives and released
  // before its memory. The remote path's thread only.
  std::shared_ptr<const void>& rma_registration() { return rma_registration_; }

 protected:
  // A derived destructor calls this before it unmaps the memory.
  void ReleaseRegistration() { rma_registration_.reset(); }

  Region(uint8_t* data, uint64_t length, MemoryKind kind, int device)
      : data_(data), length_(length), kind_(kind), device_(device) {}

 private:
  uint8_t* data_;
  uint64_t length_;
  MemoryKind kind_;
  int device_;
  std::shared_ptr<const void> rma_registration_;
};

}  // namespace axon::daemon
