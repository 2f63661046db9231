// axon._axon.Op and the message functions: sends of tensors and receives
// posted into tensors (Client::SendTensors, Client::PostRecvInto). Like a
// call, an operation's completion is stored by libaxon's thread and its
// token pushed to the client's notifier.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "axon/tensor.h"
#include "bindings.h"
#include "client_state.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

class OpHandle {
 public:
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Completed> completed;
  };

  OpHandle(std::shared_ptr<ClientState> state, Operation op, std::shared_ptr<Result> result,
           uint64_t token)
      : state_(std::move(state)), op_(op), result_(std::move(result)), token_(token) {}

  uint64_t token() const { return token_; }
  bool done() const {
    std::lock_guard<std::mutex> lock(result_->mu);
    return result_->completed.has_value();
  }
  bool Wait(double timeout) const {
    nb::gil_scoped_release unlocked;
    std::unique_lock<std::mutex> lock(result_->mu);
    auto ended = [&] { return result_->completed.has_value(); };
    if (timeout < 0) {
      result_->cv.wait(lock, ended);
      return true;
    }
    return result_->cv.wait_for(lock, std::chrono::duration<double>(timeout), ended);
  }
  void Cancel() const {
    if (done() || !state_->client) return;
    nb::gil_scoped_release unlocked;
    (void)state_->client->CancelAsync(op_);  // NOT_FOUND: it finished first
  }
  // (length, tag), or raises; the operation must have completed.
  nb::tuple Result_() const {
    std::lock_guard<std::mutex> lock(result_->mu);
    if (!result_->completed) {
      throw StatusError(absl::FailedPreconditionError("the operation has not completed"));
    }
    ThrowIfError(result_->completed->status);
    return nb::make_tuple(result_->completed->length, result_->completed->tag);
  }

 private:
  std::shared_ptr<ClientState> state_;
  Operation op_;
  std::shared_ptr<Result> result_;
  uint64_t token_;
};

std::function<void(const Completed&)> Completion(const std::shared_ptr<OpHandle::Result>& result,
                                                 const std::shared_ptr<Notifier>& notifier,
                                                 uint64_t token) {
  // Runs on libaxon's thread: no Python here.
  return [result, notifier, token](const Completed& c) {
    {
      std::lock_guard<std::mutex> lock(result->mu);
      result->completed = c;
    }
    result->cv.notify_all();
    notifier->Push(token);
  };
}

OpHandle SendAsync(const std::shared_ptr<ClientState>& state, const std::string& from,
                   const std::string& to, uint64_t tag, nb::list tensors, uint32_t timeout_ms,
                   uint64_t cuda_stream) {
  std::vector<Tensor> in;
  in.reserve(tensors.size());
  for (nb::handle t : tensors) in.push_back(ImportTensor(t, state->known));
  auto result = std::make_shared<OpHandle::Result>();
  const uint64_t token = NextToken();
  absl::StatusOr<Operation> op;
  {
    nb::gil_scoped_release unlocked;
    op = state->get().SendTensors(
        from, to, tag, in,
        OpOptions{.timeout_ms = timeout_ms, .cuda_stream = reinterpret_cast<void*>(cuda_stream)},
        Completion(result, state->notifier, token));
  }
  return OpHandle(state, ValueOrThrow(std::move(op)), std::move(result), token);
}

OpHandle RecvIntoAsync(const std::shared_ptr<ClientState>& state, const std::string& endpoint,
                       uint64_t tag, nb::handle into, uint32_t timeout_ms, const std::string& from,
                       uint64_t cuda_stream) {
  Tensor tensor = ImportTensor(into, state->known);
  auto result = std::make_shared<OpHandle::Result>();
  const uint64_t token = NextToken();
  absl::StatusOr<Operation> op;
  {
    nb::gil_scoped_release unlocked;
    op = state->get().PostRecvInto(endpoint, tag, tensor,
                                   OpOptions{.timeout_ms = timeout_ms,
                                             .cuda_stream = reinterpret_cast<void*>(cuda_stream),
                                             .from = from},
                                   Completion(result, state->notifier, token));
  }
  return OpHandle(state, ValueOrThrow(std::move(op)), std::move(result), token);
}

}  // namespace

void BindMessages(nb::module_& m) {
  nb::class_<OpHandle>(m, "Op")
      .def_prop_ro("token", &OpHandle::token)
      .def("done", &OpHandle::done)
      .def("wait", &OpHandle::Wait, nb::arg("timeout") = -1.0)
      .def("cancel", &OpHandle::Cancel)
      .def("result", &OpHandle::Result_);
  m.def("send_async", &SendAsync, nb::arg("client"), nb::arg("from_"), nb::arg("to"),
        nb::arg("tag"), nb::arg("tensors"), nb::arg("timeout_ms"), nb::arg("cuda_stream") = 0);
  m.def("recv_into_async", &RecvIntoAsync, nb::arg("client"), nb::arg("endpoint"), nb::arg("tag"),
        nb::arg("into"), nb::arg("timeout_ms"), nb::arg("from_") = "", nb::arg("cuda_stream") = 0);
}

}  // namespace axon::python
