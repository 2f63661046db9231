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

#include "axon/client.h"
#include "axon/tensor.h"

namespace axon::python {

// Host memory this process shares with its daemon (Client::AllocateHost),
// by address: a tensor that lies in it is read in place, not copied.
class SharedHostMemory {
 public:
  void Add(const std::shared_ptr<HostBuffer>& buffer);
  void Remove(const void* data);
  // The buffer holding [data, data + bytes), or null.
  std::shared_ptr<HostBuffer> Find(const void* data, uint64_t bytes) const;

 private:
  mutable std::mutex mu_;
  std::map<uintptr_t, std::weak_ptr<HostBuffer>> by_start_;
};

// `object` as a tensor: C-contiguous, a dtype axon knows, on the host or a
// CUDA device. Raises ValueError (INVALID_ARGUMENT) otherwise.
Tensor ImportTensor(nanobind::handle object, const SharedHostMemory* shared);

// A view of `tensor` that keeps its memory alive.
nanobind::object ExportTensor(Tensor tensor);

// Keeps a Python object alive from C++ (any thread); the reference goes
// with the last copy, under the GIL, or is left to the process's exit when
// the interpreter is finalizing.
std::shared_ptr<void> HoldPython(nanobind::handle object);

// Whether Python is shutting down: no Python object may be touched then.
bool PythonFinalizing();

}  // namespace axon::python
