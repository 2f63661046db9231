#include "receiver.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "client_state.h"

namespace axon::python {

void Receiver::Arrive(Received message) {
  std::shared_ptr<ReceiveOutcome> to;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;  // `message` goes, and its slot with it (outside the lock)
    if (waiting_.empty()) {
      kept_.push_back(std::move(message));
      return;
    }
    to = std::move(waiting_.front());
    waiting_.pop_front();
  }
  to->Set({absl::OkStatus(), std::move(message)});
}

std::shared_ptr<ReceiveOutcome> Receiver::Post(const std::shared_ptr<Notifier>& notifier) {
  auto receive = std::make_shared<ReceiveOutcome>(notifier, NextToken());
  ReceiveResult ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      ready.status = closed_why_;
    } else if (!kept_.empty()) {
      ready.message = std::move(kept_.front());
      kept_.pop_front();
    } else {
      waiting_.push_back(receive);
      return receive;
    }
  }
  receive->Set(std::move(ready));
  return receive;
}

void Receiver::Withdraw(const std::shared_ptr<ReceiveOutcome>& receive, const absl::Status& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(waiting_.begin(), waiting_.end(), receive);
    if (it == waiting_.end()) return;  // a message reached it first
    waiting_.erase(it);
  }
  receive->Set({why, {}});
}

void Receiver::Close(const absl::Status& why) {
  std::deque<std::shared_ptr<ReceiveOutcome>> waiting;
  std::deque<Received> kept;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    closed_why_ = why;
    waiting.swap(waiting_);
    kept.swap(kept_);
  }
  for (auto& receive : waiting) receive->Set({why, {}});
}

}  // namespace axon::python
