#include "daemon/ucx/memory_handle.h"

#include "daemon/ucx/status.h"

namespace axon::ucx {

absl::StatusOr<std::unique_ptr<MemoryHandle>> MemoryHandle::Map(const Context& context,
                                                                void* address, size_t length,
                                                                MemoryKind kind) {
  if (address == nullptr || length == 0) {
    return absl::InvalidArgumentError("cannot register an empty or null memory region");
  }
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = address;
  params.length = length;
  // CUDA memory is left for UCX to detect: UCX 1.22 refuses an explicit
  // UCS_MEMORY_TYPE_CUDA for memory it did not allocate ("Invalid parameter",
  // seen on an H100), and detects cudaMalloc'd memory correctly.
  if (kind == MemoryKind::kHost) {
    params.field_mask |= UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
    params.memory_type = UCS_MEMORY_TYPE_HOST;
  }
  ucp_mem_h handle = nullptr;
  if (auto st = ToStatus(ucp_mem_map(context.handle(), &params, &handle), "ucp_mem_map");
      !st.ok()) {
    return st;
  }
  return std::unique_ptr<MemoryHandle>(new MemoryHandle(context, handle, address, length));
}

MemoryHandle::~MemoryHandle() { ucp_mem_unmap(context_.handle(), handle_); }

absl::StatusOr<std::vector<uint8_t>> MemoryHandle::PackRemoteKey() const {
  void* buffer = nullptr;
  size_t size = 0;
  if (auto st =
          ToStatus(ucp_rkey_pack(context_.handle(), handle_, &buffer, &size), "ucp_rkey_pack");
      !st.ok()) {
    return st;
  }
  const auto* bytes = static_cast<const uint8_t*>(buffer);
  std::vector<uint8_t> key(bytes, bytes + size);
  ucp_rkey_buffer_release(buffer);
  return key;
}

}  // namespace axon::ucx
