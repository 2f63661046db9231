// ucx::MemoryHandle owns one ucp_mem_h: a region of host or CUDA memory
// registered with UCX (ucp_mem_map), so that UCX can send from it and receive
// into it without registering on every transfer, and so that a remote daemon
// can be given a key to it. Made on the UCX thread; destroyed on any thread
// when the context is shared_by_threads (ucp_mem_unmap then takes UCX's
// context lock), else on the UCX thread.
#pragma once

#include <ucp/api/ucp.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/ucx/context.h"
#include "daemon/ucx/memory_kind.h"

namespace axon::ucx {

class MemoryHandle {
 public:
  // Registers [address, address + length), which the caller keeps mapped for
  // the handle's lifetime.
  static absl::StatusOr<std::unique_ptr<MemoryHandle>> Map(const Context& context, void* address,
                                                           size_t length, MemoryKind kind);
  ~MemoryHandle();
  MemoryHandle(const MemoryHandle&) = delete;
  MemoryHandle& operator=(const MemoryHandle&) = delete;

  void* address() const { return address_; }
  size_t length() const { return length_; }
  ucp_mem_h handle() const { return handle_; }

  // The packed remote key a peer unpacks to reach this region.
  absl::StatusOr<std::vector<uint8_t>> PackRemoteKey() const;

 private:
  MemoryHandle(const Context& context, ucp_mem_h handle, void* address, size_t length)
      : context_(context), handle_(handle), address_(address), length_(length) {}

  const Context& context_;
  ucp_mem_h handle_;
  void* address_;
  size_t length_;
};

}  // namespace axon::ucx
