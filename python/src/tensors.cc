#include "tensors.h"

#include <nanobind/stl/string.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {

bool PythonFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

std::shared_ptr<void> HoldPython(nb::handle object) {
  object.inc_ref();
  return std::shared_ptr<void>(object.ptr(), [](void* p) {
    if (!Py_IsInitialized() || PythonFinalizing()) return;
    nb::gil_scoped_acquire gil;
    Py_DECREF(static_cast<PyObject*>(p));
  });
}

void KnownMemory::Add(const void* data, uint64_t bytes, const Buffer* buffer,
                      const std::shared_ptr<void>& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  // Entries whose owner is gone go as new ones come: pools reuse addresses,
  // so the map stays about as large as the memory in use.
  by_start_[reinterpret_cast<uintptr_t>(data)] = Entry{bytes, buffer, owner};
}

std::optional<KnownMemory::Found> KnownMemory::Find(const void* data, uint64_t bytes) const {
  const auto at = reinterpret_cast<uintptr_t>(data);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_start_.upper_bound(at);
  // A few starts below: a small view may begin just under a larger region.
  for (int looked = 0; it != by_start_.begin() && looked < 8; ++looked) {
    --it;
    const Entry& e = it->second;
    if (at + bytes <= it->first + e.bytes) {
      if (auto owner = e.owner.lock()) return Found{e.buffer, std::move(owner)};
    }
  }
  return std::nullopt;
}

namespace {

absl::Status Invalid(const std::string& what) { return absl::InvalidArgumentError(what); }

}  // namespace

Tensor ImportTensor(nb::handle object, const KnownMemory& known) {
  nb::ndarray<> array;
  if (!nb::try_cast(object, array)) {
    throw StatusError(Invalid(absl::StrCat(
        "a ", nb::cast<std::string>(nb::str(nb::type_name(object.type()))),
        " is not a tensor: pass an object with __dlpack__ (torch, numpy, CuPy, JAX)")));
  }
  const size_t ndim = array.ndim();
  if (ndim > kMaxDims) {
    throw StatusError(
        Invalid(absl::StrCat("a tensor of ", ndim, " dimensions; at most ", kMaxDims)));
  }
  int64_t shape[kMaxDims];
  for (size_t i = 0; i < ndim; ++i) shape[i] = static_cast<int64_t>(array.shape(i));
  // Strides are checked against the contiguous ones (in elements, as DLPack
  // gives them); a dimension of size 1 may have any stride.
  int64_t expect = 1;
  for (size_t i = ndim; i-- > 0;) {
    if (shape[i] != 1 && array.stride(i) != expect) {
      throw StatusError(Invalid(absl::StrCat(
          "the tensor is not contiguous (dimension ", i, " has stride ", array.stride(i),
          ", contiguous is ", expect, "): call .contiguous() or numpy.ascontiguousarray first")));
    }
    expect *= shape[i];
  }
  const nb::dlpack::dtype dt = array.dtype();
  const DType dtype{static_cast<DTypeCode>(dt.code), dt.bits, dt.lanes};
  if (auto st = ValidateDType(dtype); !st.ok()) throw StatusError(st);
  const absl::Span<const int64_t> dims(shape, ndim);
  void* data = array.data();
  Tensor tensor;
  if (array.device_type() == nb::device::cpu::value) {
    tensor = ValueOrThrow(Tensor::Host(data, dtype, dims));
  } else if (array.device_type() == nb::device::cuda::value) {
    tensor = ValueOrThrow(Tensor::Cuda(data, dtype, dims));
  } else {
    throw StatusError(Invalid(absl::StrCat("tensors on DLPack device type ", array.device_type(),
                                           " are not supported: host or CUDA")));
  }
  if (auto found = known.Find(data, tensor.bytes())) {
    tensor.buffer = found->buffer;
    if (!tensor.on_gpu()) tensor.desc.memory = MemoryKind::kHostMemfd;
  }
  tensor.owner = HoldPython(object);
  return tensor;
}

nb::object ExportTensor(Tensor tensor, KnownMemory& known) {
  if (tensor.buffer != nullptr && tensor.owner) {
    known.Add(tensor.data, tensor.bytes(), tensor.buffer, tensor.owner);
  }
  const size_t ndim = static_cast<size_t>(tensor.desc.ndim);
  size_t shape[kMaxDims];
  for (size_t i = 0; i < ndim; ++i) shape[i] = static_cast<size_t>(tensor.desc.shape[i]);
  const nb::dlpack::dtype dt{static_cast<uint8_t>(tensor.desc.dtype.code), tensor.desc.dtype.bits,
                             tensor.desc.dtype.lanes};
  const bool gpu = tensor.on_gpu();
  const int32_t device_type = gpu ? nb::device::cuda::value : nb::device::cpu::value;
  const int32_t device_id = gpu ? tensor.desc.device.ordinal : 0;
  void* data = tensor.data;
  auto* kept = new Tensor(std::move(tensor));
  nb::capsule owner(kept, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  // array_api: a nanobind.nb_ndarray, which exports __dlpack__ and __dlpack_device__.
  nb::ndarray<nb::array_api> array(data, ndim, shape, owner, nullptr, dt, device_type, device_id);
  return nb::cast(array, nb::rv_policy::reference);
}

}  // namespace axon::python
