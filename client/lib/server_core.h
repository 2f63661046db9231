// The serving side of calls, behind axon::Server: requests arrive on the
// client's completion thread (Client::OnArrival), their separate tensors
// are posted into pool memory, and once all have landed the request queues
// for the server's threads, which run handlers and send replies. Internal.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "axon/call.h"
#include "client/lib/call_message.h"
#include "client/lib/slot_hold.h"
#include "common/latency_histogram.h"

namespace axon::internal {

struct Session;

struct ServerCall {
  std::shared_ptr<ServerCore> core;
  Message message;                 // the request, in a receive-area slot
  std::shared_ptr<SlotHold> slot;  // until this and the request's tensors are gone
  wire::CallFrame frame;
  Request request;
  absl::Time arrived;
  std::atomic<int> landing{0};      // separate tensors still to land
  std::atomic<bool> failed{false};  // one of them did not
  std::atomic<bool> answered{false};
  std::atomic<bool> awaiting{false};  // an async handler holds it (in ServerCore::awaiting_)
  absl::StatusCode code = absl::StatusCode::kOk;  // what it was answered with
  // The reply, kept until its messages have left.
  std::optional<OutgoingCall> reply;
  std::atomic<int> sending{0};
  std::atomic<bool> send_failed{false};
};

// Whether `unclaimed` queued calls need a sleeping worker woken, with
// `spinning` idle workers spinning: each spinner takes one queued call
// without a wake-up, so only the calls beyond them do. Ready asks it for
// the call it queues alone; a worker that takes a call asks it for those
// left (ServerCore::TryTake), so that a burst that came while a spinner was
// counted does not wait behind the slow handler that spinner may run.
inline bool WakeForQueued(size_t unclaimed, int spinning, int sleeping) {
  return sleeping > 0 && unclaimed > static_cast<size_t>(std::max(spinning, 0));
}

class ServerCore : public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(Client& client, CallRuntime& runtime, std::string endpoint, ServerOptions options);

  void Handle(const std::string& method, Server::Handler handler);
  void HandleAsync(const std::string& method, Server::AsyncHandler handler);
  absl::Status Start(std::shared_ptr<const Buffer> area);
  // Stops taking requests, waits for running handlers, and answers
  // UNAVAILABLE what is queued and what async handlers still hold. Answers
  // that come later (a Responder kept past Stop) are dropped: the Client may
  // be gone by then.
  void Stop();
  std::vector<MethodStats> Stats() const;
  // Sends `reply` for `call` once (later answers are ignored).
  void Answer(const std::shared_ptr<ServerCall>& call, absl::StatusOr<Reply> reply);

 private:
  struct Method {
    Server::Handler handler;
    Server::AsyncHandler async_handler;
  };
  struct Counters {
    uint64_t calls = 0, errors = 0, in_flight = 0, dropped = 0;
    LatencyHistogram latency;
  };
  void OnArrival(const Message& message);
  // A request tensor apart landed (or failed): the call is ready once all have.
  void Landed(const std::shared_ptr<ServerCall>& call, const Completed& done);
  void Ready(std::shared_ptr<ServerCall> call);
  void Work();
  // The next queued call for a worker; null once stopping.
  std::shared_ptr<ServerCall> Next();
  // Spins a while for a queued call, unless enough workers spin already:
  // whether one is queued now.
  bool Spin();
  void Run(const std::shared_ptr<ServerCall>& call);
  void Sent(const std::shared_ptr<ServerCall>& call, const Completed& done);
  void Finish(const std::shared_ptr<ServerCall>& call, bool dropped);
  // Answer, once it may use the client (false after Stop).
  bool BeginAnswer();
  void EndAnswer();
  void AnswerNow(const std::shared_ptr<ServerCall>& call, absl::StatusOr<Reply> reply);
  Counters& CountersOf(absl::string_view method);  // stats_mu_ held
  // Takes a queued call if one is unclaimed: the worker that wins the claim
  // is the only one to lock the queue for it.
  std::shared_ptr<ServerCall> TryTake();

  Client& client_;
  const std::string endpoint_;
  const ServerOptions options_;
  CallRuntime& runtime_;
  // The receive area when libaxon made it (null when the client's own).
  std::shared_ptr<const Buffer> area_;
  std::map<std::string, Method, std::less<>> methods_;  // fixed once started

  // Three locks, so that the progress thread queuing a request, the
  // workers taking one, and the counters each call updates twice do not
  // all wait on one another.
  mutable std::mutex mu_;              // stopping, the async handlers' calls, the reporter
  std::condition_variable stop_cv_;    // the reporter's: wakes it to stop
  std::atomic<bool> stopping_{false};  // written under mu_ and queue_mu_
  // Calls an async handler holds (its Responder); guarded by mu_.
  std::map<const ServerCall*, std::weak_ptr<ServerCall>> awaiting_;

  std::mutex queue_mu_;
  std::condition_variable ready_cv_;
  std::deque<std::shared_ptr<ServerCall>> queue_;  // guarded by queue_mu_
  // Queued calls no worker has claimed yet (spinning workers watch it).
  std::atomic<size_t> queued_{0};
  int sleeping_ = 0;  // guarded by queue_mu_: workers waiting on ready_cv_
  // Idle workers spinning for a request now (at most kMaxSpinningWorkers,
  // server.cc); the other idle ones sleep on ready_cv_.
  std::atomic<int> spinning_{0};

  // Answers running, and whether Stop is done (then none may start):
  // each side writes its own, then reads the other's (both seq_cst), so
  // Stop either sees an answer running or the answer sees Stop.
  std::atomic<int> answering_{0};
  std::atomic<bool> closed_{false};
  std::condition_variable answered_cv_;  // with mu_: answering_ reached 0 after closing

  mutable std::mutex stats_mu_;
  bool started_ = false;
  std::vector<std::thread> threads_;
  std::thread reporter_;  // tells the daemon the stats, about once a second
  void Report();
  std::map<std::string, Counters, std::less<>> counters_;  // guarded by stats_mu_
};

}  // namespace axon::internal
