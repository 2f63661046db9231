// axon._axon.Op: a message or one-sided operation in flight. Like a call,
// its completion is stored by libaxon's thread and its token pushed to the
// client's notifier.
#pragma once

#include <nanobind/nanobind.h>

#include <functional>
#include <memory>

#include "axon/client.h"
#include "client_state.h"
#include "outcome.h"
#include "status.h"

namespace axon::python {

using OpOutcome = Outcome<Completed>;

class OpHandle {
 public:
  OpHandle(std::shared_ptr<ClientState> state, Operation op, std::shared_ptr<OpOutcome> outcome)
      : state_(std::move(state)), op_(op), outcome_(std::move(outcome)) {}

  uint64_t token() const { return outcome_->token(); }
  bool done() const { return outcome_->done(); }
  bool watch() { return outcome_->Await(); }
  bool Wait(double timeout) const {
    nanobind::gil_scoped_release unlocked;
    return outcome_->WaitFor(timeout);
  }
  void Cancel() const {
    if (done()) return;
    // NOT_FOUND: it finished first; FAILED_PRECONDITION: the client closed.
    (void)state_->Use([&](Client& c) { return c.CancelAsync(op_); });
  }
  // (length, tag), or raises; the operation must have completed.
  nanobind::tuple Result_() const {
    return outcome_->With(
        [](const Completed& c) {
          ThrowIfError(c.status);
          return nanobind::make_tuple(c.length, c.tag);
        },
        "the operation has not completed");
  }

 private:
  std::shared_ptr<ClientState> state_;
  Operation op_;
  std::shared_ptr<OpOutcome> outcome_;
};

// Runs on libaxon's thread: no Python there.
inline std::function<void(const Completed&)> SetOn(std::shared_ptr<OpOutcome> outcome) {
  return [outcome = std::move(outcome)](const Completed& c) { outcome->Set(c); };
}

}  // namespace axon::python
