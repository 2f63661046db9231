// libaxon, part: the serving side of calls (Server, Responder, ServerCore).
#include <pthread.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "client/lib/recycled.h"
#include "client/lib/server_core.h"
#include "client/lib/session.h"
#include "client/lib/submit.h"
#include "common/clock.h"
#include "common/cpu_relax.h"
#include "common/log.h"
#include "common/wire/call.h"

namespace axon {
namespace internal {
namespace {

// Replies to callers without a deadline still must not wait forever for a
// caller that is gone.
constexpr uint32_t kReplyTimeoutMs = 30000;
// Unknown methods are counted under one name: a caller cannot grow the table.
constexpr absl::string_view kUnknownMethod = "(unknown)";

// Idle workers that spin for the next request; the others sleep. One
// spinner takes a request without a wake-up, but while it runs the handler
// the next request would wake a sleeper (a futex call on the progress
// thread): a second spinner, under a steady stream the worker back from the
// previous handler, takes that one. More only burn cores and contend for
// the queue's counter.
constexpr int kMaxSpinningWorkers = 2;

}  // namespace

ServerCore::ServerCore(Client& client, CallRuntime& runtime, std::string endpoint,
                       ServerOptions options)
    : client_(client), endpoint_(std::move(endpoint)), options_(options), runtime_(runtime) {}

void ServerCore::Handle(const std::string& method, Server::Handler handler) {
  methods_[method] = Method{.handler = std::move(handler)};
}

void ServerCore::HandleAsync(const std::string& method, Server::AsyncHandler handler) {
  methods_[method] = Method{.async_handler = std::move(handler)};
}

absl::Status ServerCore::Start(std::shared_ptr<const Buffer> area) {
  if (started_) return absl::FailedPreconditionError("the server has started already");
  if (options_.concurrency < 1) {
    return absl::InvalidArgumentError("a server runs at least one handler at a time");
  }
  started_ = true;
  area_ = std::move(area);
  for (int i = 0; i < options_.concurrency; ++i) threads_.emplace_back([this] { Work(); });
  reporter_ = std::thread([this] { Report(); });
  std::weak_ptr<ServerCore> weak = weak_from_this();
  client_.OnArrival(endpoint_, [weak](const Message& message) {
    if (auto core = weak.lock()) core->OnArrival(message);
  });
  return absl::OkStatus();
}

void ServerCore::Stop() {
  if (client_.session_->forked_away()) {
    // The parent's threads are not here to stop or join, and its condition
    // variables still count their waiters: never torn down here. The
    // handlers go (no thread here runs them), and what they hold with them.
    methods_.clear();
    KeepForever(shared_from_this());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !started_) return;
    std::lock_guard<std::mutex> queue(queue_mu_);
    stopping_ = true;
  }
  client_.OnArrival(endpoint_, nullptr);
  ready_cv_.notify_all();
  stop_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (reporter_.joinable()) reporter_.join();
  std::deque<std::shared_ptr<ServerCall>> left;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    left.swap(queue_);
    queued_ = 0;
  }
  std::vector<std::shared_ptr<ServerCall>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [raw, weak] : awaiting_) {
      if (auto call = weak.lock()) held.push_back(std::move(call));
    }
    awaiting_.clear();
  }
  const absl::Status stopped =
      absl::UnavailableError(absl::StrCat("endpoint ", endpoint_, " stopped serving"));
  for (auto& call : left) Answer(call, stopped);
  for (auto& call : held) Answer(call, stopped);
  std::unique_lock<std::mutex> lock(mu_);
  closed_ = true;
  answered_cv_.wait(lock, [this] { return answering_ == 0; });
}

bool ServerCore::BeginAnswer() {
  answering_.fetch_add(1);
  if (!closed_.load()) return true;
  EndAnswer();
  return false;
}

void ServerCore::EndAnswer() {
  if (answering_.fetch_sub(1) == 1 && closed_.load()) {
    std::lock_guard<std::mutex> lock(mu_);  // Stop waits under it: no lost wake-up
    answered_cv_.notify_all();
  }
}

void ServerCore::Report() {
  ::pthread_setname_np(::pthread_self(), "axon-report");
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const bool stopping =
        stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_.load(); });
    lock.unlock();
    // Failing to report (a daemon restarting) costs nothing but the view.
    (void)client_.ReportCalls(endpoint_, Stats());
    lock.lock();
    if (stopping) return;
  }
}

ServerCore::Counters& ServerCore::CountersOf(absl::string_view method) {
  if (methods_.find(method) == methods_.end()) method = kUnknownMethod;
  auto it = counters_.find(method);
  if (it == counters_.end()) it = counters_.emplace(std::string(method), Counters{}).first;
  return it->second;
}

std::vector<MethodStats> ServerCore::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  std::vector<MethodStats> out;
  for (const auto& [name, c] : counters_) {
    out.push_back({.method = name,
                   .calls = c.calls,
                   .errors = c.errors,
                   .in_flight = c.in_flight,
                   .dropped_replies = c.dropped,
                   .p50_us = c.latency.Quantile(0.5),
                   .p99_us = c.latency.Quantile(0.99)});
    const auto counts = c.latency.PowerOfTwoCounts();
    out.back().latency_below_pow2_us.assign(counts.begin(), counts.end());
    out.back().latency_sum_us = c.latency.sum_micros();
  }
  return out;
}

void ServerCore::OnArrival(const Message& message) {
  auto call = std::allocate_shared<ServerCall>(Recycled<ServerCall>());
  call->core = shared_from_this();
  call->message = message;
  call->arrived = axon::Now();
  absl::Status bad;
  if (message.tag != wire::kCallRequestTag) {
    bad = absl::InvalidArgumentError(absl::StrCat("tag ", message.tag, " is not a call's"));
  } else {
    bad = wire::DecodeCallFrame({message.data, message.length}, call->frame);
    if (bad.ok() && call->frame.kind != wire::CallKind::kRequest) {
      bad = absl::InvalidArgumentError("a reply where a request belongs");
    }
  }
  if (!bad.ok()) {
    spdlog::warn("endpoint {}: dropped a message from {} that is not a call request: {}", endpoint_,
                 message.from, bad.message());
    (void)client_.Release(message);
    return;
  }
  const wire::CallFrame& frame = call->frame;
  Request& request = call->request;
  request.method = frame.method;
  request.from = message.from;
  request.header =
      absl::string_view(reinterpret_cast<const char*>(frame.header.data()), frame.header.size());
  request.tensors = InlineTensors(frame, message.data, area_.get());
  call->slot =
      std::allocate_shared<SlotHold>(Recycled<SlotHold>(), client_.session_, area_, message.slot);
  for (size_t i = 0; i < frame.tensors.size(); ++i) {
    if (frame.tensors[i].placement == wire::Placement::kInline) {
      request.tensors[i].owner = call->slot;
    }
  }
  request.call_id = frame.call_id;
  if (frame.timeout_ms != 0)
    request.deadline = call->arrived + absl::Milliseconds(frame.timeout_ms);
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++CountersOf(request.method).in_flight;
  }
  int separate = 0;
  for (const wire::CallTensor& t : frame.tensors)
    separate += t.placement == wire::Placement::kSeparate;
  if (separate == 0) {
    Ready(std::move(call));
    return;
  }
  // All counted before the first is posted: one may land at once.
  call->landing = separate + 1;
  for (size_t i = 0; i < frame.tensors.size(); ++i) {
    const wire::CallTensor& t = frame.tensors[i];
    if (t.placement != wire::Placement::kSeparate) continue;
    auto landed = runtime_.Land(t.desc, t.bytes);
    absl::StatusOr<Operation> op = absl::UnknownError("not posted");
    if (!landed.ok()) {
      op = landed.status();
    } else {
      request.tensors[i] = *landed;
      const size_t offset =
          static_cast<size_t>(static_cast<const uint8_t*>(landed->data) -
                              static_cast<const uint8_t*>(landed->buffer->data()));
      op = Submit::PostRecv(
          client_, endpoint_, wire::CallTensorTag(frame.call_id, i, /*reply=*/false),
          *landed->buffer, offset, t.bytes,
          {.timeout_ms = RemainingMs(request.deadline), .from = request.from},
          [this, call](const wire::Completion& c) { Landed(call, ToCompleted(c)); });
    }
    if (!op.ok()) {
      spdlog::warn("endpoint {}: call {} from {}: cannot take tensor {}: {}", endpoint_,
                   frame.call_id, request.from, i, op.status().message());
      call->failed = true;
      if (--call->landing == 0) Answer(call, op.status());
      continue;
    }
  }
  if (--call->landing == 0) {
    if (call->failed) {
      Answer(call, absl::ResourceExhaustedError("the server could not take the call's tensors"));
    } else {
      Ready(call);
    }
  }
}

void ServerCore::Landed(const std::shared_ptr<ServerCall>& call, const Completed& done) {
  if (!done.status.ok()) call->failed = true;
  if (--call->landing > 0) return;
  if (call->failed) {
    Finish(call, /*dropped=*/true);  // the caller's tensor never came: it gave up
  } else {
    Ready(call);
  }
}

void ServerCore::Ready(std::shared_ptr<ServerCall> call) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(call));
      queued_.fetch_add(1, std::memory_order_seq_cst);
      // Only when no worker spins does this, the progress, thread wake a
      // sleeping one (a futex call). A spinner that stops before it sees
      // this call checks `queued_` under queue_mu_ before it sleeps, so it
      // still takes one; calls beyond the spinners, a burst, are the
      // workers' to wake for (TryTake).
      if (WakeForQueued(1, spinning_.load(std::memory_order_seq_cst), sleeping_)) {
        ready_cv_.notify_one();
      }
      return;
    }
  }
  Answer(call, absl::UnavailableError(absl::StrCat("endpoint ", endpoint_, " stopped serving")));
}

std::shared_ptr<ServerCall> ServerCore::TryTake() {
  size_t unclaimed = queued_.load(std::memory_order_relaxed);
  while (unclaimed > 0 &&
         !queued_.compare_exchange_weak(unclaimed, unclaimed - 1, std::memory_order_acquire)) {
  }
  if (unclaimed == 0) return nullptr;
  // Claimed: the queue holds at least one call for this worker (Stop, the
  // only other taker, runs after the workers are gone).
  std::lock_guard<std::mutex> lock(queue_mu_);
  std::shared_ptr<ServerCall> call = std::move(queue_.front());
  queue_.pop_front();
  // Calls still queued that the spinners will not take (a burst that came
  // while a spinner was still counted, which may now run a slow handler)
  // wake a sleeper: each worker that takes a call hands the rest on.
  if (WakeForQueued(queued_.load(std::memory_order_seq_cst),
                    spinning_.load(std::memory_order_seq_cst), sleeping_)) {
    ready_cv_.notify_one();
  }
  return call;
}

bool ServerCore::Spin() {
  int spinning = spinning_.load(std::memory_order_relaxed);
  do {
    if (spinning >= kMaxSpinningWorkers) return false;
  } while (!spinning_.compare_exchange_weak(spinning, spinning + 1, std::memory_order_seq_cst));
  const absl::Time until = axon::Now() + absl::Microseconds(50);
  bool found = false;
  for (int i = 1; !found; ++i) {
    if (stopping_.load(std::memory_order_relaxed)) break;
    found = queued_.load(std::memory_order_acquire) > 0;
    if (i % 64 == 0 && axon::Now() > until) break;
    CpuRelax();
  }
  spinning_.fetch_sub(1, std::memory_order_seq_cst);
  return found;
}

std::shared_ptr<ServerCall> ServerCore::Next() {
  while (true) {
    if (stopping_.load(std::memory_order_relaxed)) return nullptr;
    if (queued_.load(std::memory_order_acquire) > 0) {
      // A worker that loses the claim to another goes round again.
      if (auto call = TryTake()) return call;
      continue;
    }
    if (Spin()) continue;
    std::unique_lock<std::mutex> lock(queue_mu_);
    ++sleeping_;
    ready_cv_.wait(lock, [this] { return stopping_.load() || queued_.load() > 0; });
    --sleeping_;
  }
}

void ServerCore::Work() {
  ::pthread_setname_np(::pthread_self(), "axon-handler");
  while (auto call = Next()) Run(call);
}

void ServerCore::Run(const std::shared_ptr<ServerCall>& call) {
  const Request& request = call->request;
  if (axon::Now() > request.deadline) {
    call->answered = true;
    call->code = absl::StatusCode::kDeadlineExceeded;
    Finish(call, /*dropped=*/true);  // its caller has given up
    return;
  }
  auto method = methods_.find(request.method);
  if (method == methods_.end()) {
    Answer(call, absl::UnimplementedError(absl::StrCat(
                     "endpoint ", endpoint_, " serves no method '", request.method, "'")));
    return;
  }
  try {
    if (method->second.async_handler) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        awaiting_.emplace(call.get(), call);
        call->awaiting = true;
      }
      method->second.async_handler(request, Responder(call));
      return;
    }
    Answer(call, method->second.handler(request));
  } catch (const std::exception& e) {
    Answer(call,
           absl::InternalError(absl::StrCat("method ", request.method, " threw: ", e.what())));
  }
}

void ServerCore::Answer(const std::shared_ptr<ServerCall>& call, absl::StatusOr<Reply> reply) {
  if (call->answered.exchange(true)) return;
  if (call->awaiting) {
    std::lock_guard<std::mutex> lock(mu_);
    awaiting_.erase(call.get());
  }
  if (!BeginAnswer()) return;  // stopped: the client may be gone
  AnswerNow(call, std::move(reply));
  EndAnswer();
}

void ServerCore::AnswerNow(const std::shared_ptr<ServerCall>& call, absl::StatusOr<Reply> reply) {
  call->code = reply.status().code();
  const Request& request = call->request;
  OutgoingCall& out = call->reply.emplace();
  auto build = [&](const absl::Status& status, absl::Span<const Tensor> tensors) {
    wire::CallFrame frame{.kind = wire::CallKind::kReply,
                          .call_id = request.call_id,
                          .code = static_cast<uint32_t>(status.code()),
                          .message = status.message().substr(
                              0, std::min(status.message().size(), wire::kMaxStatusMessage))};
    if (reply.ok()) {
      frame.header = {reinterpret_cast<const uint8_t*>(reply->header.data()), reply->header.size()};
    }
    return BuildCall(runtime_, std::move(frame), tensors, call->frame.reply_room,
                     call->frame.reply_apart, out);
  };
  absl::Status built =
      reply.ok() ? build(absl::OkStatus(), reply->tensors) : build(reply.status(), {});
  if (!built.ok()) {  // the handler's reply cannot go: say why instead
    const absl::Status why =
        absl::InternalError(absl::StrCat("method ", request.method, "'s reply: ", built.message()));
    call->code = why.code();
    reply = why;
    if (!build(why, {}).ok()) {
      call->reply.reset();
      Finish(call, /*dropped=*/true);
      return;
    }
  }
  call->sending = 1;  // held until every send is submitted
  auto submitted = SendCall(
      client_, endpoint_, request.from, wire::CallReplyTag(request.call_id), *call->reply,
      /*reply=*/true,
      request.deadline == absl::InfiniteFuture() ? kReplyTimeoutMs : RemainingMs(request.deadline),
      [this, &call]() -> Session::Callback {
        ++call->sending;
        return [this, call](const wire::Completion& c) { Sent(call, ToCompleted(c)); };
      },
      [](Operation) {});
  if (!submitted.ok()) call->send_failed = true;
  Sent(call, Completed{});
}

void ServerCore::Sent(const std::shared_ptr<ServerCall>& call, const Completed& done) {
  if (!done.status.ok()) call->send_failed = true;
  if (--call->sending > 0) return;
  Finish(call, call->send_failed);
}

void ServerCore::Finish(const std::shared_ptr<ServerCall>& call, bool dropped) {
  {
    // Before the slot goes back: the method name is read from it. (Counted
    // after, a call was sometimes filed under the next request's method.)
    std::lock_guard<std::mutex> lock(stats_mu_);
    Counters& c = CountersOf(call->request.method);
    --c.in_flight;
    ++c.calls;
    if (call->code != absl::StatusCode::kOk) ++c.errors;
    if (dropped) ++c.dropped;
    c.latency.Add(absl::ToDoubleMicroseconds(axon::Now() - call->arrived));
  }
  if (dropped) {
    spdlog::debug("endpoint {}: the reply to call {} from {} was dropped (the caller is gone)",
                  endpoint_, call->request.call_id, call->request.from);
  }
  call->slot.reset();  // the slot goes back once the handler's tensors are gone too
  call->reply.reset();
  call->request.tensors.clear();
  call->core.reset();
}

}  // namespace internal

Responder::Responder(std::shared_ptr<internal::ServerCall> call) : call_(std::move(call)) {}
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (call_) Send(absl::InternalError("the handler dropped its Responder without answering"));
    call_ = std::move(other.call_);
  }
  return *this;
}
Responder::~Responder() {
  if (call_) Send(absl::InternalError("the handler dropped its Responder without answering"));
}

void Responder::Send(absl::StatusOr<Reply> reply) {
  if (!call_) return;
  std::shared_ptr<internal::ServerCall> call = std::move(call_);
  if (auto core = call->core) core->Answer(call, std::move(reply));
}

Server::Server(Client& client, std::string endpoint, ServerOptions options)
    : client_(client),
      endpoint_(std::move(endpoint)),
      core_(std::make_shared<internal::ServerCore>(client, client.call_runtime(), endpoint_,
                                                   options)),
      options_(options) {}

Server::~Server() { Stop(); }

void Server::Handle(const std::string& method, Handler handler) {
  core_->Handle(method, std::move(handler));
}

void Server::HandleAsync(const std::string& method, AsyncHandler handler) {
  core_->HandleAsync(method, std::move(handler));
}

absl::Status Server::Start() {
  // No threads of a server for the parent's session in a fork() child.
  if (auto st = client_.session_->NotForked(); !st.ok()) return st;
  auto area = client_.call_runtime().ReceiveArea(options_.slot_bytes, options_.slots);
  if (!area.ok()) return area.status();
  return core_->Start(*area);
}

void Server::Stop() { core_->Stop(); }

std::vector<MethodStats> Server::Stats() const { return core_->Stats(); }

}  // namespace axon
