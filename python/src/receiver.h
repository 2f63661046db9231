// Unposted messages for one endpoint, handed to Python's Endpoint.recv:
// libaxon's completion thread brings each message (Client::OnArrival,
// Client::Hold) to the oldest waiting receive, or keeps it, slot held,
// until one comes. Never touches Python.
#pragma once

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
};
using ReceiveOutcome = Outcome<ReceiveResult>;

class Receiver {
 public:
  // libaxon's thread: to the oldest waiting receive, else kept.
  void Arrive(Received message);
  // A receive: set at once when a message waits.
  std::shared_ptr<ReceiveOutcome> Post(const std::shared_ptr<Notifier>& notifier);
  // Ends `receive` with `why` unless a message reached it first.
  void Withdraw(const std::shared_ptr<ReceiveOutcome>& receive, const absl::Status& why);
  // Ends every waiting receive with `why`, gives the kept messages' slots
  // back, and drops later arrivals.
  void Close(const absl::Status& why);

 private:
  std::mutex mu_;
  bool closed_ = false;                                  // guarded by mu_
  absl::Status closed_why_;                              // guarded by mu_
  std::deque<std::shared_ptr<ReceiveOutcome>> waiting_;  // guarded by mu_
  std::deque<Received> kept_;                            // guarded by mu_
};

}  // namespace axon::python
