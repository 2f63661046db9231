// Tensors between Python and libaxon, through DLPack, without copies:
// - in: any object with __dlpack__ (torch, numpy, CuPy, JAX) becomes an
//   axon::Tensor over the same memory, which keeps the object alive;
// - out: an axon::Tensor (a reply's, a request's, shared memory) becomes a
//   nanobind ndarray that exports __dlpack__ and keeps the memory alive
//   until the last view of it is gone.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "axon/client.h"
#include "axon/tensor.h"

namespace axon::python {

// Memory libaxon registered (a Buffer: shared host memory, pool blocks,
// receive-area slots), by address, for as long as its owner lives. A tensor
// exported from it and handed back (a request's tensors returned as the
// reply, views of client.allocate) is read in place through its Buffer, not
// copied or registered again.
class KnownMemory {
 public:
  void Add(const void* data, uint64_t bytes, const Buffer* buffer,
           const std::shared_ptr<void>& owner);
  struct Found {
    const Buffer* buffer = nullptr;
    std::shared_ptr<void> owner;
  };
  // The registered memory holding [data, data + bytes), if any.
  std::optional<Found> Find(const void* data, uint64_t bytes) const;

 private:
  struct Entry {
    uint64_t bytes;
    const Buffer* buffer;
    std::weak_ptr<void> owner;
  };
  mutable std::mutex mu_;
  std::map<uintptr_t, Entry> by_start_;  // guarded by mu_
};

// `object` as a tensor: C-contiguous, a dtype axon knows, on the host or a
// CUDA device. Raises ValueError (INVALID_ARGUMENT) otherwise.
Tensor ImportTensor(nanobind::handle object, const KnownMemory& known);

// A view of `tensor` that keeps its memory alive; a tensor in a Buffer is
// added to `known`.
nanobind::object ExportTensor(Tensor tensor, KnownMemory& known);

// Keeps a Python object alive from C++ (any thread); the reference goes
// with the last copy, under the GIL, or is left to the process's exit when
// the interpreter is finalizing.
std::shared_ptr<void> HoldPython(nanobind::handle object);

// Whether Python is shutting down: no Python object may be touched then.
bool PythonFinalizing();

}  // namespace axon::python
