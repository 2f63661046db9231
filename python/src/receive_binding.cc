// axon._axon's unposted receives (Endpoint.recv): a message with no posted
// receive lands in a slot of the client's receive area and reaches Python
// as a view of that slot (Client::Hold), zero copy; the slot goes back to
// the daemon when the last view of it is gone.
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <chrono>
#include <memory>
#include <string>

#include "bindings.h"
#include "client_state.h"
#include "receiver.h"
#include "status.h"
#include "tensors.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

class ReceiveHandle {
 public:
  ReceiveHandle(std::shared_ptr<ClientState> state, std::shared_ptr<Receiver> receiver,
                std::shared_ptr<ReceiveOutcome> outcome)
      : state_(std::move(state)), receiver_(std::move(receiver)), outcome_(std::move(outcome)) {}
  ReceiveHandle(ReceiveHandle&&) = default;
  ReceiveHandle& operator=(ReceiveHandle&&) = delete;
  ReceiveHandle(const ReceiveHandle&) = delete;
  // A receive nobody can wait on any more takes no message; one it got and
  // nobody took goes to the next receive.
  ~ReceiveHandle() {
    if (outcome_) receiver_->Abandon(outcome_);
  }

  uint64_t token() const { return outcome_->token(); }
  bool done() const { return outcome_->done(); }
  bool watch() { return outcome_->Await(); }
  bool Wait(double timeout) const {
    nb::gil_scoped_release unlocked;
    return outcome_->WaitFor(timeout);
  }
  void Cancel() const { receiver_->Withdraw(outcome_, absl::CancelledError("cancelled")); }
  // The receive's deadline passed: it ends DEADLINE_EXCEEDED unless a
  // message reached it first; either way it has ended when this returns.
  void Expire() const {
    receiver_->Withdraw(outcome_,
                        absl::DeadlineExceededError("no message arrived within the timeout"));
  }
  // (sender, tag, view), once; then the view holds the slot alone. An
  // error is raised every time.
  nb::tuple Take() const {
    ReceiveResult taken = outcome_->Take(
        [](ReceiveResult& r) {
          if (!r.status.ok()) return ReceiveResult{r.status, {}};
          if (r.taken) {
            return ReceiveResult{absl::FailedPreconditionError("the message was taken already"),
                                 {}};
          }
          r.taken = true;
          return ReceiveResult{r.status, std::move(r.message)};
        },
        "the receive has not completed");
    ThrowIfError(taken.status);
    Received& m = taken.message;
    return nb::make_tuple(m.from, m.tag, ExportTensor(std::move(m.tensor), state_->known));
  }

 private:
  std::shared_ptr<ClientState> state_;
  std::shared_ptr<Receiver> receiver_;
  std::shared_ptr<ReceiveOutcome> outcome_;
};

// The endpoint's receiver, made on its first receive: the receive area
// (slots of `slot_bytes` unless the client has one) and the arrival handler.
std::shared_ptr<Receiver> ReceiverOf(ClientState& state, const std::string& endpoint,
                                     uint32_t slot_bytes, uint32_t slots) {
  if (auto it = state.receivers.find(endpoint); it != state.receivers.end()) return it->second;
  state.get();  // raises once closed
  // In the map before the GIL goes: a receive from another thread meanwhile
  // waits on this receiver rather than making a second one.
  auto receiver = std::make_shared<Receiver>();
  state.receivers[endpoint] = receiver;
  const absl::Status made = state.Use([&](Client& client) {
    absl::Status st = client.UseReceiveArea(slot_bytes, slots);
    if (st.ok()) {
      // The client's session runs it, and drops it before the client goes.
      client.OnArrival(endpoint, [receiver, client = &client](const Message& message) {
        receiver->Arrive(client->Hold(message));
      });
    }
    return st;
  });
  if (!made.ok()) {
    state.receivers.erase(endpoint);
    receiver->Close(made);
    throw StatusError(made);
  }
  return receiver;
}

// `timeout_ms` 0: no deadline.
ReceiveHandle ReceiveAsync(const std::shared_ptr<ClientState>& state, const std::string& endpoint,
                           uint32_t slot_bytes, uint32_t slots, uint32_t timeout_ms) {
  auto receiver = ReceiverOf(*state, endpoint, slot_bytes, slots);
  const auto deadline = timeout_ms == 0
                            ? Receiver::Clock::time_point::max()
                            : Receiver::Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto outcome = receiver->Post(state->notifier, deadline);
  return ReceiveHandle(state, std::move(receiver), std::move(outcome));
}

void StopReceiving(ClientState& state, const std::string& endpoint) {
  auto it = state.receivers.find(endpoint);
  if (it == state.receivers.end()) return;
  std::shared_ptr<Receiver> receiver = std::move(it->second);
  state.receivers.erase(it);
  (void)state.Use([&](Client& client) {
    client.OnArrival(endpoint, nullptr);
    return absl::OkStatus();
  });  // FAILED_PRECONDITION: closed, and the handler went with the client
  receiver->Close(absl::FailedPreconditionError("the endpoint was closed"));
}

}  // namespace

void CloseReceivers(ClientState& state, const absl::Status& why) {
  auto receivers = std::move(state.receivers);
  state.receivers.clear();
  for (auto& [endpoint, receiver] : receivers) receiver->Close(why);
}

void BindReceives(nb::module_& m) {
  nb::class_<ReceiveHandle>(m, "Receive")
      .def_prop_ro("token", &ReceiveHandle::token)
      .def("done", &ReceiveHandle::done)
      .def("watch", &ReceiveHandle::watch)
      .def("wait", &ReceiveHandle::Wait, nb::arg("timeout") = -1.0)
      .def("cancel", &ReceiveHandle::Cancel)
      .def("expire", &ReceiveHandle::Expire)
      .def("take", &ReceiveHandle::Take);
  m.def("receive_async", &ReceiveAsync, nb::arg("client"), nb::arg("endpoint"),
        nb::arg("slot_bytes"), nb::arg("slots"), nb::arg("timeout_ms"));
  m.def("stop_receiving", &StopReceiving, nb::arg("client"), nb::arg("endpoint"));
  m.def("receiving", [](const ClientState& s, const std::string& endpoint) {
    return s.receivers.count(endpoint) != 0;
  });
}

}  // namespace axon::python
