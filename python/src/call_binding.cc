// axon._axon.Call and Client.call: a call in flight, as Python sees it.
// libaxon completes it on its progress thread, which stores the reply and
// pushes the call's token to the client's notifier; Python collects it from
// there (asyncio) or waits on the call itself (blocking), the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>

#include "axon/call.h"
#include "bindings.h"
#include "client_state.h"
#include "outcome.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

using CallOutcome = Outcome<absl::StatusOr<Reply>>;

class CallHandle {
 public:
  CallHandle(PendingCall pending, std::shared_ptr<CallOutcome> outcome,
             std::shared_ptr<ClientState> state)
      : pending_(std::move(pending)), outcome_(std::move(outcome)), state_(std::move(state)) {}

  uint64_t token() const { return outcome_->token(); }
  bool done() const { return outcome_->done(); }
  bool watch() { return outcome_->Await(); }
  // True once the call has ended; negative `timeout`: no limit.
  bool Wait(double timeout) const {
    nb::gil_scoped_release unlocked;
    // libaxon's own wait first: it spins briefly before it sleeps, which
    // saves a sleeping thread's wake-up on a fast call. The reply is ours
    // once the Then callback has stored it, just after.
    constexpr int kHour = 3600 * 1000;
    const int ms = timeout < 0 ? kHour : static_cast<int>(std::min(timeout * 1000, 2e9));
    while (!pending_.WaitFor(ms)) {
      if (timeout >= 0) return done();
    }
    return outcome_->WaitFor(timeout);
  }
  void Cancel() const {
    nb::gil_scoped_release unlocked;
    pending_.Cancel();
  }
  // (header, [tensors]) or raises; the call must have ended.
  nb::tuple Reply_() const {
    return outcome_->With(
        [&](const absl::StatusOr<Reply>& reply) {
          ThrowIfError(reply.status());
          nb::list tensors;
          for (const Tensor& t : reply->tensors) tensors.append(ExportTensor(t, state_->known));
          return nb::make_tuple(nb::bytes(reply->header.data(), reply->header.size()), tensors);
        },
        "the call has not ended");
  }

 private:
  PendingCall pending_;
  std::shared_ptr<CallOutcome> outcome_;
  std::shared_ptr<ClientState> state_;  // Python's: the client stays until the call object goes
};

CallHandle CallAsync(const std::shared_ptr<ClientState>& state, const std::string& from,
                     const std::string& to, const std::string& method, nb::bytes header,
                     nb::list tensors, nb::list reply_into, uint32_t timeout_ms,
                     uint64_t cuda_stream) {
  std::vector<Tensor> in, into;
  in.reserve(tensors.size());
  for (nb::handle t : tensors) in.push_back(ImportTensor(t, state->known));
  for (nb::handle t : reply_into) into.push_back(ImportTensor(t, state->known));
  CallOptions options{.timeout_ms = timeout_ms,
                      .reply_into = into,
                      .cuda_stream = reinterpret_cast<void*>(cuda_stream)};
  const absl::string_view head(header.c_str(), header.size());
  auto outcome = std::make_shared<CallOutcome>(state->notifier, NextToken());
  auto pending = state->Use([&](Client& c) {
    Caller caller(c, from);
    auto call = caller.CallAsync(to, method, head, in, options);
    if (call.ok()) {
      call->Then([outcome](absl::StatusOr<Reply> reply) { outcome->Set(std::move(reply)); });
    }
    return call;
  });
  return CallHandle(ValueOrThrow(std::move(pending)), std::move(outcome), state);
}

}  // namespace

void BindCalls(nb::module_& m) {
  nb::class_<CallHandle>(m, "Call")
      .def_prop_ro("token", &CallHandle::token)
      .def("done", &CallHandle::done)
      .def("watch", &CallHandle::watch)
      .def("wait", &CallHandle::Wait, nb::arg("timeout") = -1.0)
      .def("cancel", &CallHandle::Cancel)
      .def("reply", &CallHandle::Reply_);
  m.def("call_async", &CallAsync, nb::arg("client"), nb::arg("from_"), nb::arg("to"),
        nb::arg("method"), nb::arg("header"), nb::arg("tensors"), nb::arg("reply_into"),
        nb::arg("timeout_ms"), nb::arg("cuda_stream") = 0);
}

}  // namespace axon::python
