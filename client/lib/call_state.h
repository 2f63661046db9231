// A call in flight on the caller's side: what it waits for, what it keeps
// alive, and how it ends (exactly once, by its reply, a failed operation,
// its deadline or Cancel). Internal to libaxon.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "axon/call.h"
#include "client/lib/call_message.h"
#include "client/lib/submit.h"

namespace axon::internal {

struct CallState : std::enable_shared_from_this<CallState> {
  Client* client = nullptr;
  CallRuntime* runtime = nullptr;
  std::string endpoint;  // the caller's
  std::string to;        // the server's address
  std::string method;
  uint64_t call_id = 0;
  absl::Time deadline = absl::InfiniteFuture();
  uint64_t max_reply_bytes = 0;
  absl::InlinedVector<Tensor, 1> reply_into;
  uint64_t reply_apart = 0;  // bit i: a receive into reply_into[i] was posted with the request

  std::mutex mu;
  std::condition_variable ended_cv;
  bool ended = false;                                             // guarded by mu
  std::atomic<bool> ended_flag{false};                            // `ended`, for waiters that spin
  std::optional<absl::StatusOr<Reply>> result;                    // guarded by mu, once ended
  std::vector<std::function<void(absl::StatusOr<Reply>)>> thens;  // guarded by mu
  absl::InlinedVector<uint64_t, 4> pending;           // guarded by mu: op ids not yet completed
  absl::InlinedVector<uint64_t, 4> pending_receives;  // guarded by mu: those that are receives
  int awaited = 0;                 // guarded by mu: receives of the reply still to land
  Reply reply;                     // guarded by mu: being assembled
  OutgoingCall request;            // kept until its sends complete
  std::shared_ptr<Block> landing;  // where the reply message lands

  // The call itself while an operation of it is pending (guarded by mu):
  // the operations' callbacks hold only `this`, which keeps them within
  // std::function's inline storage (no allocation per operation). Set
  // exactly while `pending` is not empty.
  std::shared_ptr<CallState> self;
  // The request's message, sent quiet (guarded by mu; 0: none, or no longer
  // pending): the daemon completes it only if it fails, and the reply's
  // arrival says it arrived (every byte of it read: the server decoded it).
  uint64_t quiet_op = 0;

  // Ends the call with `result` unless it has ended; withdraws what is
  // still pending and runs the callbacks (not under mu).
  void End(absl::StatusOr<Reply> result);
  // What a completion of one of the call's operations means.
  enum class Step : uint8_t { kRequestSent, kReplyMessage, kReplyTensor, kQuietWithdrawn };
  // The completion callback of one of the call's operations: takes it off
  // the pending lists, then runs the step's handler (under no lock).
  Session::Callback Completion(Step step);
  // mu held: operation `op_id` was submitted (a receive or a send).
  void Submitted(uint64_t op_id, bool receive) {
    pending.push_back(op_id);
    if (receive) pending_receives.push_back(op_id);
    if (!self) self = shared_from_this();
  }
  // mu held: operation `op_id` is no longer pending.
  void Settled(uint64_t op_id);
  // The reply landed: the quiet request is done, and its callback dropped
  // unless its (failed) completion came first.
  void ForgetQuiet();
  // The call failed with its quiet request pending: a cancel finds out
  // whether the daemon still has it (then its failure completes it) or it
  // completed quietly (then it is forgotten).
  void WithdrawQuiet(uint64_t op_id);
  void OnQuietWithdrawn(const Completed& done);
  // Submits one operation, a receive or a send: `submit(callback)` returns
  // its Operation. mu is held meanwhile, so that its completion (which
  // takes mu) finds it pending. CANCELLED if the call already ended.
  template <typename Fn>
  absl::Status Start(bool receive, Step step, Fn submit) {
    std::lock_guard<std::mutex> lock(mu);
    if (ended) return absl::CancelledError("the call ended");
    absl::StatusOr<Operation> op = submit(Completion(step));
    if (!op.ok()) return op.status();
    Submitted(op->id, receive);
    return absl::OkStatus();
  }
  // The reply message landed (`length` bytes in `landing`).
  void OnReplyMessage(const Completed& done);
  // One of the reply's receives landed.
  void OnReplyTensor(const Completed& done);
  // The request (or one of its tensors) was sent: only a failure matters.
  void OnRequestSent(const Completed& done);
};

}  // namespace axon::internal
