// Checking, sizing and naming tensor descriptors (tensor_desc.h). libaxon
// checks a descriptor before it leaves the process and axond checks every one
// that arrives, so nothing here trusts a field: every product is
// overflow-checked, and every refusal names the field at fault. The success
// paths take no allocation, since the call path checks each tensor it sends.
#include "common/tensor/tensor_desc.h"

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace axon {
namespace {

// What a DLPack type code allows. Codes whose name carries the width
// ("float" + 32) list every width; the fixed-width formats have one.
struct CodeInfo {
  DTypeCode code;
  const char* name;
  bool name_has_bits;
  std::array<uint8_t, 4> bits;  // the widths allowed; 0 pads
};

// torch.complex32 (ComplexHalf) is exported by PyTorch as complex of 32 bits,
// hence 32 among the complex widths.
constexpr CodeInfo kCodes[] = {
    {DTypeCode::kInt, "int", true, {8, 16, 32, 64}},
    {DTypeCode::kUInt, "uint", true, {8, 16, 32, 64}},
    {DTypeCode::kFloat, "float", true, {16, 32, 64}},
    {DTypeCode::kBfloat, "bfloat", true, {16}},
    {DTypeCode::kComplex, "complex", true, {32, 64, 128}},
    {DTypeCode::kBool, "bool", false, {8}},
    {DTypeCode::kFloat8_e3m4, "float8_e3m4", false, {8}},
    {DTypeCode::kFloat8_e4m3, "float8_e4m3", false, {8}},
    {DTypeCode::kFloat8_e4m3b11fnuz, "float8_e4m3b11fnuz", false, {8}},
    {DTypeCode::kFloat8_e4m3fn, "float8_e4m3fn", false, {8}},
    {DTypeCode::kFloat8_e4m3fnuz, "float8_e4m3fnuz", false, {8}},
    {DTypeCode::kFloat8_e5m2, "float8_e5m2", false, {8}},
    {DTypeCode::kFloat8_e5m2fnuz, "float8_e5m2fnuz", false, {8}},
    {DTypeCode::kFloat8_e8m0fnu, "float8_e8m0fnu", false, {8}},
    {DTypeCode::kFloat6_e2m3fn, "float6_e2m3fn", false, {6}},
    {DTypeCode::kFloat6_e3m2fn, "float6_e3m2fn", false, {6}},
    {DTypeCode::kFloat4_e2m1fn, "float4_e2m1fn", false, {4}},
};

// kCodes' index by code (-1: none), so that a lookup, made several times
// for each tensor a call carries, is one load rather than a search.
constexpr std::array<int8_t, 256> kCodeIndex = [] {
  std::array<int8_t, 256> index{};
  index.fill(-1);
  for (size_t i = 0; i < std::size(kCodes); ++i) {
    index[static_cast<uint8_t>(kCodes[i].code)] = static_cast<int8_t>(i);
  }
  return index;
}();

const CodeInfo* FindCode(DTypeCode code) {
  const int8_t i = kCodeIndex[static_cast<uint8_t>(code)];
  return i < 0 ? nullptr : &kCodes[i];
}

// Bytes per element of a dtype that passed ValidateDType.
uint32_t CheckedElementBytes(DType dtype) { return uint32_t{dtype.bits} * dtype.lanes / 8; }

bool AllowsBits(const CodeInfo& info, uint8_t bits) {
  for (uint8_t b : info.bits) {
    if (b != 0 && b == bits) return true;
  }
  return false;
}

std::string AllowedBits(const CodeInfo& info) {
  std::string out;
  for (uint8_t b : info.bits) {
    if (b == 0) break;
    absl::StrAppend(&out, out.empty() ? "" : ", ", b);
  }
  return out;
}

// "[4, 1024]"; `n` is clamped so that a descriptor with a bad ndim still
// prints.
std::string Dims(const std::array<int64_t, kMaxDims>& values, int32_t n) {
  const int32_t count = n < 0 ? 0 : (n > kMaxDims ? kMaxDims : n);
  return absl::StrCat("[", absl::StrJoin(values.begin(), values.begin() + count, ", "), "]");
}

absl::Status CheckDevice(const Device& device) {
  switch (device.kind) {
    case DeviceKind::kHost:
      if (!device.pci_bus_id.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a host tensor's device has no PCI bus id (got \"", device.pci_bus_id, "\")"));
      }
      return absl::OkStatus();
    case DeviceKind::kCuda:
      if (device.pci_bus_id.empty()) {
        return absl::InvalidArgumentError(
            "a CUDA tensor's device needs its PCI bus id (\"0000:3b:00.0\"): the ordinal means "
            "nothing outside the process");
      }
      if (device.pci_bus_id.size() > 31) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a CUDA tensor's PCI bus id is ", device.pci_bus_id.size(), " characters; at most 31"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tensor device kind ", static_cast<int>(device.kind)));
}

// ValidateTensorDesc, giving the byte size when it passes.
absl::Status Check(const TensorDesc& desc, uint64_t& bytes) {
  if (absl::Status st = ValidateDType(desc.dtype); !st.ok()) return st;
  if (desc.ndim < 0 || desc.ndim > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor has ", desc.ndim, " dimensions; axon carries 0 to ", kMaxDims));
  }
  const absl::Span<const int64_t> dims = desc.dims();
  bool empty = false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor shape ", Dims(desc.shape, desc.ndim),
                                                     " has a negative extent (dimension ", i, ")"));
    }
    empty = empty || dims[i] == 0;
  }
  if (absl::Status st = CheckDevice(desc.device); !st.ok()) return st;
  switch (desc.memory) {
    case MemoryKind::kHostMemfd:
    case MemoryKind::kHostOther:
    case MemoryKind::kCudaIpc:
    case MemoryKind::kCudaVmm:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown tensor memory kind ", static_cast<int>(desc.memory)));
  }

  // An extent of 0 makes the count 0 whatever the others are, so the
  // products below can only overflow for a tensor that really is too big.
  uint64_t count = empty ? 0 : 1;
  if (!empty) {
    for (int64_t extent : dims) {
      if (__builtin_mul_overflow(count, static_cast<uint64_t>(extent), &count)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor of shape ", Dims(desc.shape, desc.ndim), " has more than 2^64 elements"));
      }
    }
  }

  // An empty tensor has no layout to speak of: PyTorch and NumPy call it
  // contiguous whatever its strides, and so does axon (.contiguous() would
  // not change them).
  if (desc.has_strides && !empty) {
    std::array<int64_t, kMaxDims> expected{};
    bool contiguous = true;
    uint64_t step = 1;  // at most `count`, so it cannot overflow
    for (int32_t i = desc.ndim - 1; i >= 0; --i) {
      expected[i] = static_cast<int64_t>(step);
      const int64_t stride = desc.strides[i];
      // The stride of an extent-1 dimension is never used to reach an
      // element, so DLPack lets it be anything.
      if (dims[i] != 1 && (stride < 0 || static_cast<uint64_t>(stride) != step)) {
        contiguous = false;
      }
      step *= static_cast<uint64_t>(dims[i]);
    }
    if (!contiguous) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor strides ", Dims(desc.strides, desc.ndim),
                       " are not contiguous for shape ", Dims(desc.shape, desc.ndim), " (expected ",
                       Dims(expected, desc.ndim), "); make it contiguous first"));
    }
  }

  // The dtype passed ValidateDType above: its size needs no second check.
  if (__builtin_mul_overflow(count, uint64_t{CheckedElementBytes(desc.dtype)}, &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor of shape ", Dims(desc.shape, desc.ndim), " has more than 2^64 bytes"));
  }
  if (uint64_t end; __builtin_add_overflow(desc.byte_offset, bytes, &end)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor byte_offset ", desc.byte_offset,
                                                   " plus its ", bytes, " bytes passes 2^64"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateDType(DType dtype) {
  const CodeInfo* info = FindCode(dtype.code);
  if (info == nullptr) {
    const int code = static_cast<int>(dtype.code);
    return absl::InvalidArgumentError(
        absl::StrCat("unknown dtype code ", code,
                     code == 3 ? " (DLPack's opaque handle, which has no size)" : ""));
  }
  if (!AllowsBits(*info, dtype.bits)) {
    return absl::InvalidArgumentError(absl::StrCat("dtype ", info->name, " of ", dtype.bits,
                                                   " bits: ", info->name, " has ",
                                                   AllowedBits(*info), " bits"));
  }
  if (dtype.lanes == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", info->name, " has 0 lanes; at least 1"));
  }
  if (uint32_t{dtype.bits} * dtype.lanes % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("dtype ", info->name, " of ", dtype.lanes,
                                                   " lane(s) takes ", dtype.bits * dtype.lanes,
                                                   " bits, not a whole number of bytes"));
  }
  return absl::OkStatus();
}

uint32_t ElementBytes(DType dtype) {
  return ValidateDType(dtype).ok() ? CheckedElementBytes(dtype) : 0;
}

std::string DTypeName(DType dtype) {
  if (!ValidateDType(dtype).ok()) {
    return absl::StrCat("dtype(code=", static_cast<int>(dtype.code), ",bits=", dtype.bits,
                        ",lanes=", dtype.lanes, ")");
  }
  const CodeInfo* info = FindCode(dtype.code);
  std::string name = info->name;
  if (info->name_has_bits) absl::StrAppend(&name, dtype.bits);
  if (dtype.lanes > 1) absl::StrAppend(&name, "x", dtype.lanes);
  return name;
}

absl::StatusOr<TensorDesc> TensorDesc::Contiguous(DType dtype, absl::Span<const int64_t> shape,
                                                  Device device) {
  if (shape.size() > static_cast<size_t>(kMaxDims)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor has ", shape.size(), " dimensions; axon carries 0 to ", kMaxDims));
  }
  TensorDesc desc;
  desc.dtype = dtype;
  desc.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) desc.shape[i] = shape[i];
  desc.has_strides = false;
  desc.device = std::move(device);
  // Refused here rather than when it is sent, where the caller is further
  // from the mistake.
  if (absl::Status st = ValidateTensorDesc(desc); !st.ok()) return st;
  return desc;
}

absl::Status ValidateTensorDesc(const TensorDesc& desc) {
  uint64_t bytes = 0;
  return Check(desc, bytes);
}

absl::StatusOr<uint64_t> TensorBytes(const TensorDesc& desc) {
  uint64_t bytes = 0;
  if (absl::Status st = Check(desc, bytes); !st.ok()) return st;
  return bytes;
}

std::string DescribeTensor(const TensorDesc& desc) {
  std::string out = absl::StrCat(DTypeName(desc.dtype), Dims(desc.shape, desc.ndim));
  switch (desc.device.kind) {
    case DeviceKind::kHost:
      absl::StrAppend(&out, " host");
      break;
    case DeviceKind::kCuda:
      absl::StrAppend(&out, " cuda:", desc.device.pci_bus_id);
      break;
    default:
      absl::StrAppend(&out, " device(kind=", static_cast<int>(desc.device.kind), ")");
      break;
  }
  return out;
}

}  // namespace axon
