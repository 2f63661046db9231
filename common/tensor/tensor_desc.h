// What a tensor is, apart from its bytes: element type (DLPack's codes, so
// that torch, numpy, CuPy and JAX arrays map onto it one to one), shape,
// strides, where its first element lies, and which memory holds it. Shared by
// libaxon and axond, and carried on the wire by calls (common/wire/call.h).
//
// axon moves contiguous (row-major) tensors only: a strided view is refused
// with INVALID_ARGUMENT naming its strides, rather than gathered silently
// (make it contiguous first, where the copy is visible).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace axon {

// DLPack's DLDataTypeCode values (dlpack.h 1.1), so a DLDataType converts by
// field. kOpaqueHandle (3) is refused: it has no size.
enum class DTypeCode : uint8_t {
  kInt = 0,
  kUInt = 1,
  kFloat = 2,
  kBfloat = 4,
  kComplex = 5,
  kBool = 6,
  kFloat8_e3m4 = 7,
  kFloat8_e4m3 = 8,
  kFloat8_e4m3b11fnuz = 9,
  kFloat8_e4m3fn = 10,
  kFloat8_e4m3fnuz = 11,
  kFloat8_e5m2 = 12,
  kFloat8_e5m2fnuz = 13,
  kFloat8_e8m0fnu = 14,
  kFloat6_e2m3fn = 15,
  kFloat6_e3m2fn = 16,
  kFloat4_e2m1fn = 17,
};

// An element type as DLPack spells it: code, bits per lane, lanes.
struct DType {
  DTypeCode code = DTypeCode::kUInt;
  uint8_t bits = 8;
  uint16_t lanes = 1;

  bool operator==(const DType&) const = default;
};

namespace dtype {
inline constexpr DType kUInt8{DTypeCode::kUInt, 8};
inline constexpr DType kInt8{DTypeCode::kInt, 8};
inline constexpr DType kInt16{DTypeCode::kInt, 16};
inline constexpr DType kInt32{DTypeCode::kInt, 32};
inline constexpr DType kInt64{DTypeCode::kInt, 64};
inline constexpr DType kUInt16{DTypeCode::kUInt, 16};
inline constexpr DType kUInt32{DTypeCode::kUInt, 32};
inline constexpr DType kUInt64{DTypeCode::kUInt, 64};
inline constexpr DType kFloat16{DTypeCode::kFloat, 16};
inline constexpr DType kFloat32{DTypeCode::kFloat, 32};
inline constexpr DType kFloat64{DTypeCode::kFloat, 64};
inline constexpr DType kBFloat16{DTypeCode::kBfloat, 16};
inline constexpr DType kComplex64{DTypeCode::kComplex, 64};
inline constexpr DType kComplex128{DTypeCode::kComplex, 128};
inline constexpr DType kBool{DTypeCode::kBool, 8};
inline constexpr DType kFloat8E4M3Fn{DTypeCode::kFloat8_e4m3fn, 8};
inline constexpr DType kFloat8E4M3FnUz{DTypeCode::kFloat8_e4m3fnuz, 8};
inline constexpr DType kFloat8E5M2{DTypeCode::kFloat8_e5m2, 8};
inline constexpr DType kFloat8E5M2FnUz{DTypeCode::kFloat8_e5m2fnuz, 8};
inline constexpr DType kFloat8E8M0FnU{DTypeCode::kFloat8_e8m0fnu, 8};
}  // namespace dtype

// OK for a dtype axon can size: a known code, a bit width that code allows
// (int/uint 8-64, float 16/32/64, bfloat 16, complex 32/64/128, bool 8, the
// fp8 codes 8, fp6 6, fp4 4), 1 to 65535 lanes, and a whole number of bytes
// per element. INVALID_ARGUMENT naming what is wrong otherwise.
absl::Status ValidateDType(DType dtype);
// Bytes per element (bits * lanes / 8); 0 for a dtype ValidateDType refuses.
uint32_t ElementBytes(DType dtype);
// "float32", "bfloat16", "float8_e4m3fn", "uint8x4" (lanes > 1), or
// "dtype(code=3,bits=8,lanes=1)" for one that does not validate.
std::string DTypeName(DType dtype);

enum class DeviceKind : uint8_t {
  kHost = 1,  // CPU memory (DLPack kDLCPU)
  kCuda = 2,  // CUDA device memory (DLPack kDLCUDA)
};

// Where the bytes live. A CUDA device is named by its PCI bus id
// ("0000:3b:00.0"), which means the same GPU in every process on the node
// whatever CUDA_VISIBLE_DEVICES says; `ordinal` is the device's index in the
// process that made the descriptor and means nothing elsewhere.
struct Device {
  DeviceKind kind = DeviceKind::kHost;
  int32_t ordinal = -1;
  std::string pci_bus_id;  // empty for host memory; at most 31 characters

  bool operator==(const Device&) const = default;
};

// How the memory is shared with the daemon.
enum class MemoryKind : uint8_t {
  kHostMemfd = 1,  // host memory in a sealed memfd the daemon mapped
  kHostOther = 2,  // host memory the daemon cannot map (copied once by libaxon)
  kCudaIpc = 3,    // a cudaMalloc allocation, opened by legacy CUDA IPC handle
  kCudaVmm = 4,    // a CUDA VMM allocation, shared as a POSIX fd
};

inline constexpr int kMaxDims = 8;

// A tensor's description. Shape and strides count elements (DLPack's
// convention); empty strides means contiguous. byte_offset is where element
// [0, ..., 0] lies from the start of the memory the descriptor travels with.
struct TensorDesc {
  DType dtype;
  int32_t ndim = 0;  // 0 is a scalar (one element)
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};
  bool has_strides = false;
  uint64_t byte_offset = 0;
  Device device;
  MemoryKind memory = MemoryKind::kHostMemfd;

  // A contiguous tensor of `shape`.
  static absl::StatusOr<TensorDesc> Contiguous(DType dtype, absl::Span<const int64_t> shape,
                                               Device device = {});
  absl::Span<const int64_t> dims() const { return {shape.data(), static_cast<size_t>(ndim)}; }
  bool operator==(const TensorDesc&) const = default;
};

// Checks `desc`: a valid dtype, 0 to kMaxDims dimensions, no negative
// extent, strides (if given) that are exactly the contiguous ones (any
// stride of a dimension of extent 1 is accepted, as DLPack allows, and any
// strides of an empty tensor, which PyTorch calls contiguous), an element
// count and byte size that do not overflow 64 bits, a device whose kind and
// PCI bus id agree, a known memory kind, and a byte_offset that keeps the
// end below 2^64. INVALID_ARGUMENT naming the field
// otherwise ("tensor strides [1, 4] are not contiguous for shape [4, 2]
// (expected [2, 1]); make it contiguous first").
absl::Status ValidateTensorDesc(const TensorDesc& desc);
// The number of bytes the tensor's elements take (0 for an empty tensor),
// after ValidateTensorDesc; its error otherwise.
absl::StatusOr<uint64_t> TensorBytes(const TensorDesc& desc);
// "float32[4, 1024] cuda:0000:3b:00.0" for logs and errors.
std::string DescribeTensor(const TensorDesc& desc);

}  // namespace axon
