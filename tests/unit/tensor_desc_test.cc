// Tensor descriptors (common/tensor/tensor_desc.h): every dtype the
// frameworks hand axon sized and named right, and every descriptor axon
// cannot move refused with a message naming the field at fault.
#include "common/tensor/tensor_desc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace axon {
namespace {

using ::testing::HasSubstr;

std::string Error(const absl::Status& st) { return std::string(st.message()); }

TensorDesc Desc(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {}) {
  TensorDesc d;
  d.dtype = dtype;
  d.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size() && i < d.shape.size(); ++i) d.shape[i] = shape[i];
  d.has_strides = !strides.empty();
  for (size_t i = 0; i < strides.size() && i < d.strides.size(); ++i) d.strides[i] = strides[i];
  return d;
}

Device Cuda(std::string bus_id = "0000:3b:00.0") {
  return Device{.kind = DeviceKind::kCuda, .ordinal = 0, .pci_bus_id = std::move(bus_id)};
}

struct Named {
  DType dtype;
  const char* name;
  uint32_t bytes;
};

// What torch.utils.dlpack (and numpy, CuPy, JAX) hand over for each dtype.
TEST(DType, EveryFrameworkDtypeIsSizedAndNamed) {
  const Named cases[] = {
      {dtype::kUInt8, "uint8", 1},
      {dtype::kInt8, "int8", 1},
      {dtype::kInt16, "int16", 2},
      {dtype::kInt32, "int32", 4},
      {dtype::kInt64, "int64", 8},
      {dtype::kUInt16, "uint16", 2},
      {dtype::kUInt32, "uint32", 4},
      {dtype::kUInt64, "uint64", 8},
      {dtype::kFloat16, "float16", 2},
      {dtype::kFloat32, "float32", 4},
      {dtype::kFloat64, "float64", 8},
      {dtype::kBFloat16, "bfloat16", 2},
      {DType{DTypeCode::kComplex, 32}, "complex32", 4},  // torch.complex32 (chalf)
      {dtype::kComplex64, "complex64", 8},
      {dtype::kComplex128, "complex128", 16},
      {dtype::kBool, "bool", 1},
      {dtype::kFloat8E4M3Fn, "float8_e4m3fn", 1},
      {dtype::kFloat8E4M3FnUz, "float8_e4m3fnuz", 1},
      {dtype::kFloat8E5M2, "float8_e5m2", 1},
      {dtype::kFloat8E5M2FnUz, "float8_e5m2fnuz", 1},
      {dtype::kFloat8E8M0FnU, "float8_e8m0fnu", 1},
      {DType{DTypeCode::kFloat8_e3m4, 8}, "float8_e3m4", 1},
      {DType{DTypeCode::kFloat8_e4m3, 8}, "float8_e4m3", 1},
      {DType{DTypeCode::kFloat8_e4m3b11fnuz, 8}, "float8_e4m3b11fnuz", 1},
      // torch.float4_e2m1fn_x2: two 4-bit lanes in a byte.
      {DType{DTypeCode::kFloat4_e2m1fn, 4, 2}, "float4_e2m1fnx2", 1},
      {DType{DTypeCode::kFloat6_e2m3fn, 6, 4}, "float6_e2m3fnx4", 3},
      {DType{DTypeCode::kFloat6_e3m2fn, 6, 4}, "float6_e3m2fnx4", 3},
      {DType{DTypeCode::kUInt, 8, 4}, "uint8x4", 4},
      {DType{DTypeCode::kFloat, 32, 65535}, "float32x65535", 4 * 65535},
  };
  for (const Named& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(ValidateDType(c.dtype).ok()) << ValidateDType(c.dtype);
    EXPECT_EQ(ElementBytes(c.dtype), c.bytes);
    EXPECT_EQ(DTypeName(c.dtype), c.name);
  }
}

TEST(DType, UnknownCodesAreRefused) {
  for (int code : {3, 18, 100, 255}) {
    const DType d{static_cast<DTypeCode>(code), 8};
    const absl::Status st = ValidateDType(d);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Error(st), HasSubstr(absl::StrCat("unknown dtype code ", code)));
    EXPECT_EQ(ElementBytes(d), 0u);
    EXPECT_EQ(DTypeName(d), absl::StrCat("dtype(code=", code, ",bits=8,lanes=1)"));
  }
  // DLPack's opaque handle says why it has no size.
  EXPECT_THAT(Error(ValidateDType(DType{static_cast<DTypeCode>(3), 8})),
              HasSubstr("opaque handle"));
}

TEST(DType, WidthsACodeDoesNotHaveAreRefused) {
  const DType bad[] = {
      {DTypeCode::kInt, 12},           {DTypeCode::kInt, 128},       {DTypeCode::kUInt, 1},
      {DTypeCode::kFloat, 8},          {DTypeCode::kFloat, 128},     {DTypeCode::kBfloat, 32},
      {DTypeCode::kComplex, 16},       {DTypeCode::kComplex, 8},     {DTypeCode::kBool, 1},
      {DTypeCode::kFloat8_e4m3fn, 16}, {DTypeCode::kFloat8_e5m2, 4}, {DTypeCode::kFloat6_e2m3fn, 8},
      {DTypeCode::kFloat4_e2m1fn, 8},  {DTypeCode::kInt, 0},
  };
  for (const DType& d : bad) {
    SCOPED_TRACE(DTypeName(d));
    const absl::Status st = ValidateDType(d);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Error(st), HasSubstr(absl::StrCat(" of ", d.bits, " bits")));
    EXPECT_EQ(ElementBytes(d), 0u);
    EXPECT_THAT(DTypeName(d), HasSubstr("dtype(code="));
  }
  EXPECT_EQ(Error(ValidateDType(DType{DTypeCode::kInt, 12})),
            "dtype int of 12 bits: int has 8, 16, 32, 64 bits");
}

TEST(DType, LanesMustMakeWholeBytes) {
  // One 4-bit lane is half a byte: torch packs fp4 in pairs.
  const absl::Status half = ValidateDType(DType{DTypeCode::kFloat4_e2m1fn, 4, 1});
  EXPECT_EQ(half.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(half), HasSubstr("not a whole number of bytes"));
  EXPECT_FALSE(ValidateDType(DType{DTypeCode::kFloat6_e3m2fn, 6, 2}).ok());
  EXPECT_TRUE(ValidateDType(DType{DTypeCode::kFloat4_e2m1fn, 4, 4}).ok());

  const absl::Status none = ValidateDType(DType{DTypeCode::kFloat, 32, 0});
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(none), HasSubstr("0 lanes"));
}

TEST(TensorDesc, ContiguousBuildsAnUnstridedDescriptor) {
  auto d = TensorDesc::Contiguous(dtype::kFloat32, {4, 1024}, Cuda());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ndim, 2);
  EXPECT_THAT(d->dims(), ::testing::ElementsAre(4, 1024));
  EXPECT_FALSE(d->has_strides);
  EXPECT_EQ(d->device, Cuda());
  EXPECT_EQ(d->memory, MemoryKind::kHostMemfd);
  EXPECT_EQ(*TensorBytes(*d), 4u * 1024 * 4);

  auto scalar = TensorDesc::Contiguous(dtype::kFloat64, {});
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(scalar->ndim, 0);
  EXPECT_EQ(scalar->device.kind, DeviceKind::kHost);
  EXPECT_EQ(*TensorBytes(*scalar), 8u);  // a scalar is one element
}

TEST(TensorDesc, ContiguousTakesEightDimensionsAndNoMore) {
  const std::vector<int64_t> eight(8, 2);
  auto ok = TensorDesc::Contiguous(dtype::kUInt8, eight);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*TensorBytes(*ok), 256u);

  const std::vector<int64_t> nine(9, 2);
  auto refused = TensorDesc::Contiguous(dtype::kUInt8, nine);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(refused.status()), HasSubstr("9 dimensions"));
}

TEST(TensorDesc, ContiguousRefusesWhatValidateRefuses) {
  EXPECT_THAT(Error(TensorDesc::Contiguous(dtype::kFloat32, {-1}).status()),
              HasSubstr("negative extent"));
  EXPECT_THAT(Error(TensorDesc::Contiguous(DType{DTypeCode::kFloat, 8}, {1}).status()),
              HasSubstr("float of 8 bits"));
  EXPECT_THAT(Error(TensorDesc::Contiguous(dtype::kFloat32, {1}, Cuda("")).status()),
              HasSubstr("PCI bus id"));
}

TEST(TensorDesc, ContiguousStridesAreAccepted) {
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {4, 2}, {2, 1})).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {2, 3, 4}, {12, 4, 1})).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {7}, {1})).ok());
  EXPECT_EQ(*TensorBytes(Desc(dtype::kInt16, {2, 3, 4}, {12, 4, 1})), 48u);
}

TEST(TensorDesc, NonContiguousStridesAreRefusedWithTheExpectedOnes) {
  // A transposed [2, 4] matrix.
  const absl::Status st = ValidateTensorDesc(Desc(dtype::kFloat32, {4, 2}, {1, 4}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Error(st),
            "tensor strides [1, 4] are not contiguous for shape [4, 2] (expected [2, 1]); make it "
            "contiguous first");
  // A slice with a step, a broadcast (stride 0), a negative stride.
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kFloat32, {4}, {2})).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kFloat32, {4, 3}, {0, 1})).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kFloat32, {4}, {-1})).ok());
  // Row padding: each row of 3 starts 4 elements after the last.
  EXPECT_THAT(Error(ValidateTensorDesc(Desc(dtype::kFloat32, {2, 3}, {4, 1}))),
              HasSubstr("(expected [3, 1])"));
  EXPECT_FALSE(TensorBytes(Desc(dtype::kFloat32, {4, 2}, {1, 4})).ok());
}

TEST(TensorDesc, ExtentOneDimensionsTakeAnyStride) {
  // DLPack (and PyTorch's unsqueeze) leave any stride on a dimension of
  // extent 1: it never moves to another element.
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {4, 1, 2}, {2, 999, 1})).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {1, 4}, {0, 1})).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {1}, {-5})).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc(dtype::kFloat32, {1, 1, 1}, {7, 7, 7})).ok());
  // ... but the other dimensions still count it as 1.
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kFloat32, {4, 1, 2}, {4, 1, 1})).ok());
}

TEST(TensorDesc, EmptyTensorsHaveNoBytesAndAnyStrides) {
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat32, {0})), 0u);
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat32, {4, 0, 3})), 0u);
  // PyTorch calls an empty tensor contiguous whatever its strides
  // (.contiguous() leaves them), so axon does too.
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat32, {0, 4}, {1, 0})), 0u);
  // Extents whose product overflows do not, when one is 0.
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat32, {big, big, 0})), 0u);
}

TEST(TensorDesc, ScalarIsOneElement) {
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat32, {})), 4u);
  EXPECT_EQ(*TensorBytes(Desc(dtype::kComplex128, {})), 16u);
  TensorDesc d;  // the default: a uint8 scalar on the host
  EXPECT_TRUE(ValidateTensorDesc(d).ok());
  EXPECT_EQ(*TensorBytes(d), 1u);
}

TEST(TensorDesc, NegativeExtentsAreRefused) {
  const absl::Status one = ValidateTensorDesc(Desc(dtype::kFloat32, {-1}));
  EXPECT_EQ(one.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(one), HasSubstr("tensor shape [-1] has a negative extent"));
  EXPECT_THAT(Error(ValidateTensorDesc(Desc(dtype::kFloat32, {4, 2, -3}))),
              HasSubstr("tensor shape [4, 2, -3] has a negative extent (dimension 2)"));
  // An empty dimension elsewhere does not hide it.
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kFloat32, {0, -3})).ok());
}

TEST(TensorDesc, ElementCountOverflowIsRefused) {
  const int64_t two32 = int64_t{1} << 32;
  const absl::Status st = ValidateTensorDesc(Desc(dtype::kUInt8, {two32, two32}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Error(st), "tensor of shape [4294967296, 4294967296] has more than 2^64 elements");
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kUInt8, {max, max})).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc(dtype::kUInt8, {max, 2, 2})).ok());
  // 2^63 elements fit; it is their bytes that do not.
  EXPECT_THAT(Error(ValidateTensorDesc(Desc(dtype::kFloat16, {max, 2}))), HasSubstr("2^64 bytes"));
  EXPECT_EQ(*TensorBytes(Desc(dtype::kUInt8, {max, 2})), uint64_t{0} - 2);
}

TEST(TensorDesc, ByteSizeOverflowIsRefused) {
  const int64_t two31 = int64_t{1} << 31;
  // 2^63 elements (they fit) of 4 bytes.
  const auto bytes = TensorBytes(Desc(dtype::kFloat32, {two31, two31, 2}));
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Error(bytes.status()),
            "tensor of shape [2147483648, 2147483648, 2] has more than 2^64 bytes");
  // The largest that fits: 2^62 elements of 2 bytes.
  EXPECT_EQ(*TensorBytes(Desc(dtype::kFloat16, {two31, two31})), uint64_t{1} << 63);
  // Lanes count too: 2^61 elements of 8 lanes of 4 bytes.
  EXPECT_FALSE(TensorBytes(Desc(DType{DTypeCode::kFloat, 32, 8}, {int64_t{1} << 61})).ok());
  // A byte_offset that would carry the end past 2^64.
  TensorDesc d = Desc(dtype::kFloat32, {4});
  d.byte_offset = std::numeric_limits<uint64_t>::max() - 8;
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("byte_offset"));
}

TEST(TensorDesc, DimensionCountOutOfRangeIsRefused) {
  TensorDesc d = Desc(dtype::kFloat32, {2});
  d.ndim = 9;
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("tensor has 9 dimensions"));
  d.ndim = -1;
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("tensor has -1 dimensions"));
  d.ndim = kMaxDims;
  d.shape.fill(1);
  EXPECT_TRUE(ValidateTensorDesc(d).ok());
}

TEST(TensorDesc, DeviceKindAndBusIdMustAgree) {
  TensorDesc d = Desc(dtype::kFloat32, {4});
  d.device = Cuda();
  EXPECT_TRUE(ValidateTensorDesc(d).ok());
  d.device = Cuda(std::string(31, 'a'));
  EXPECT_TRUE(ValidateTensorDesc(d).ok());
  d.device = Cuda(std::string(32, 'a'));
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("32 characters; at most 31"));
  d.device = Cuda("");
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("needs its PCI bus id"));
  d.device = Device{.kind = DeviceKind::kHost, .pci_bus_id = "0000:3b:00.0"};
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("host tensor's device has no PCI bus id"));
  d.device = Device{.kind = static_cast<DeviceKind>(7)};
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("unknown tensor device kind 7"));
}

TEST(TensorDesc, UnknownMemoryKindIsRefused) {
  TensorDesc d = Desc(dtype::kFloat32, {4});
  for (MemoryKind m : {MemoryKind::kHostMemfd, MemoryKind::kHostOther, MemoryKind::kCudaIpc,
                       MemoryKind::kCudaVmm}) {
    d.memory = m;
    EXPECT_TRUE(ValidateTensorDesc(d).ok());
  }
  d.memory = static_cast<MemoryKind>(0);
  EXPECT_THAT(Error(ValidateTensorDesc(d)), HasSubstr("unknown tensor memory kind 0"));
}

TEST(TensorDesc, InvalidDTypeIsRefusedByValidate) {
  const absl::Status st = ValidateTensorDesc(Desc(DType{static_cast<DTypeCode>(3), 8}, {4}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Error(st), HasSubstr("unknown dtype code 3"));
}

TEST(TensorDesc, DescribeTensor) {
  TensorDesc gpu = Desc(dtype::kFloat32, {4, 1024});
  gpu.device = Cuda();
  EXPECT_EQ(DescribeTensor(gpu), "float32[4, 1024] cuda:0000:3b:00.0");
  EXPECT_EQ(DescribeTensor(Desc(dtype::kBFloat16, {})), "bfloat16[] host");
  EXPECT_EQ(DescribeTensor(Desc(DType{DTypeCode::kUInt, 8, 4}, {3})), "uint8x4[3] host");
  // A descriptor that does not validate still prints.
  TensorDesc bad = Desc(DType{static_cast<DTypeCode>(3), 8}, {2});
  bad.ndim = 100;
  bad.device.kind = static_cast<DeviceKind>(9);
  EXPECT_EQ(DescribeTensor(bad),
            "dtype(code=3,bits=8,lanes=1)[2, 0, 0, 0, 0, 0, 0, 0] device(kind=9)");
}

}  // namespace
}  // namespace axon
