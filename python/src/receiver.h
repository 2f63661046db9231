// Unposted messages for one endpoint, handed to Python's Endpoint.recv:
// libaxon's completion thread brings each message (Client::OnArrival,
// Client::Hold) to the oldest waiting receive whose deadline has not
// passed, or keeps it, slot held, until one comes. Never touches Python.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "axon/tensor.h"
#include "notifier.h"
#include "outcome.h"

namespace axon::python {

struct ReceiveResult {
  absl::Status status;
  Received message;
  bool taken = false;  // the message went to Python
};
using ReceiveOutcome = Outcome<ReceiveResult>;

class Receiver {
 public:
  using Clock = std::chrono::steady_clock;

  // libaxon's thread: to the oldest live waiting receive, else kept.
  void Arrive(Received message);
  // A receive: set at once when a message waits. Past `deadline` it takes
  // no message (and ends DEADLINE_EXCEEDED when one comes, or on Withdraw).
  std::shared_ptr<ReceiveOutcome> Post(const std::shared_ptr<Notifier>& notifier,
                                       Clock::time_point deadline);
  // Ends `receive` with `why` unless a message reached it first. After it
  // returns, `receive` is set.
  void Withdraw(const std::shared_ptr<ReceiveOutcome>& receive, const absl::Status& why);
  // Nobody will read `receive` any more: withdrawn if it waits; a message
  // it holds and nobody took goes to the next receive (or is kept first in
  // line), not lost.
  void Abandon(const std::shared_ptr<ReceiveOutcome>& receive);
  // Ends every waiting receive with `why`, gives the kept messages' slots
  // back, and drops later arrivals.
  void Close(const absl::Status& why);

 private:
  struct Waiting {
    std::shared_ptr<ReceiveOutcome> receive;
    Clock::time_point deadline;
  };
  // Under mu_: the message to the oldest waiting receive whose deadline has
  // not passed (those past it end DEADLINE_EXCEEDED), else kept at the
  // front (`first`) or the back.
  void DeliverLocked(Received message, bool first);

  std::mutex mu_;
  bool closed_ = false;          // guarded by mu_
  absl::Status closed_why_;      // guarded by mu_
  std::deque<Waiting> waiting_;  // guarded by mu_
  std::deque<Received> kept_;    // guarded by mu_
};

}  // namespace axon::python
