#include "receiver.h"

#include <algorithm>
#include <utility>

#include "client_state.h"

namespace axon::python {
namespace {

absl::Status TooLate() {
  return absl::DeadlineExceededError("no message arrived within the timeout");
}

}  // namespace

// Outcomes are set under mu_ (Set never touches Python): once a receive is
// off the waiting list, it is set, so a Withdraw that finds nothing can
// rely on the outcome being there.
void Receiver::DeliverLocked(Received message, bool first) {
  const auto now = Clock::now();
  while (!waiting_.empty()) {
    Waiting w = std::move(waiting_.front());
    waiting_.pop_front();
    if (w.deadline <= now) {
      w.receive->Set({TooLate(), {}});
      continue;
    }
    w.receive->Set({absl::OkStatus(), std::move(message)});
    return;
  }
  if (first) {
    kept_.push_front(std::move(message));
  } else {
    kept_.push_back(std::move(message));
  }
}

void Receiver::Arrive(Received message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;  // `message` goes, and its slot with it
  DeliverLocked(std::move(message), false);
}

std::shared_ptr<ReceiveOutcome> Receiver::Post(const std::shared_ptr<Notifier>& notifier,
                                               Clock::time_point deadline) {
  auto receive = std::make_shared<ReceiveOutcome>(notifier, NextToken());
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) {
    receive->Set({closed_why_, {}});
  } else if (!kept_.empty()) {
    receive->Set({absl::OkStatus(), std::move(kept_.front())});
    kept_.pop_front();
  } else {
    waiting_.push_back({receive, deadline});
  }
  return receive;
}

void Receiver::Withdraw(const std::shared_ptr<ReceiveOutcome>& receive, const absl::Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [&](const Waiting& w) { return w.receive == receive; });
  if (it == waiting_.end()) return;  // a message (or Close) reached it first
  waiting_.erase(it);
  receive->Set({why, {}});
}

void Receiver::Abandon(const std::shared_ptr<ReceiveOutcome>& receive) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [&](const Waiting& w) { return w.receive == receive; });
  if (it != waiting_.end()) {
    waiting_.erase(it);
    return;
  }
  if (closed_) return;
  Received untaken;
  const bool back = receive->Take(
      [&](ReceiveResult& r) {
        if (!r.status.ok() || r.taken) return false;
        untaken = std::move(r.message);
        r.taken = true;
        return true;
      },
      "");
  if (back) DeliverLocked(std::move(untaken), true);
}

void Receiver::Close(const absl::Status& why) {
  std::deque<Received> kept;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    closed_why_ = why;
    for (Waiting& w : waiting_) w.receive->Set({why, {}});
    waiting_.clear();
    kept.swap(kept_);
  }
  // `kept` goes here, without the lock: its slots go back.
}

}  // namespace axon::python
