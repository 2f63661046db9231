// axon._axon.Op and the message functions: sends of tensors and receives
// posted into tensors (Client::SendTensors, Client::PostRecvInto).
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <functional>

#include "axon/tensor.h"
#include "bindings.h"
#include "client_state.h"
#include "op_handle.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

OpHandle SendAsync(const std::shared_ptr<ClientState>& state, const std::string& from,
                   const std::string& to, uint64_t tag, nb::list tensors, uint32_t timeout_ms,
                   uint64_t cuda_stream) {
  std::vector<Tensor> in;
  in.reserve(tensors.size());
  for (nb::handle t : tensors) in.push_back(ImportTensor(t, state->known));
  auto outcome = std::make_shared<OpOutcome>(state->notifier, NextToken());
  auto op = state->Use([&](Client& c) {
    return c.SendTensors(
        from, to, tag, in,
        OpOptions{.timeout_ms = timeout_ms, .cuda_stream = reinterpret_cast<void*>(cuda_stream)},
        SetOn(outcome));
  });
  return OpHandle(state, ValueOrThrow(std::move(op)), std::move(outcome));
}

OpHandle RecvIntoAsync(const std::shared_ptr<ClientState>& state, const std::string& endpoint,
                       uint64_t tag, nb::handle into, uint32_t timeout_ms, const std::string& from,
                       uint64_t cuda_stream) {
  Tensor tensor = ImportTensor(into, state->known);
  auto outcome = std::make_shared<OpOutcome>(state->notifier, NextToken());
  auto op = state->Use([&](Client& c) {
    return c.PostRecvInto(endpoint, tag, tensor,
                          OpOptions{.timeout_ms = timeout_ms,
                                    .cuda_stream = reinterpret_cast<void*>(cuda_stream),
                                    .from = from},
                          SetOn(outcome));
  });
  return OpHandle(state, ValueOrThrow(std::move(op)), std::move(outcome));
}

}  // namespace

void BindMessages(nb::module_& m) {
  nb::class_<OpHandle>(m, "Op")
      .def_prop_ro("token", &OpHandle::token)
      .def("done", &OpHandle::done)
      .def("watch", &OpHandle::watch)
      .def("wait", &OpHandle::Wait, nb::arg("timeout") = -1.0)
      .def("cancel", &OpHandle::Cancel)
      .def("result", &OpHandle::Result_);
  m.def("send_async", &SendAsync, nb::arg("client"), nb::arg("from_"), nb::arg("to"),
        nb::arg("tag"), nb::arg("tensors"), nb::arg("timeout_ms"), nb::arg("cuda_stream") = 0);
  m.def("recv_into_async", &RecvIntoAsync, nb::arg("client"), nb::arg("endpoint"), nb::arg("tag"),
        nb::arg("into"), nb::arg("timeout_ms"), nb::arg("from_") = "", nb::arg("cuda_stream") = 0);
}

}  // namespace axon::python
