// libaxon, part: the calling side of calls (Caller, PendingCall).
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "client/lib/call_runtime.h"
#include "client/lib/call_state.h"
#include "client/lib/recycled.h"
#include "common/clock.h"
#include "common/cpu_relax.h"
#include "common/cuda/driver.h"
#include "common/wire/call.h"

namespace axon {
namespace internal {

void CallState::End(absl::StatusOr<Reply> outcome) {
  std::vector<std::function<void(absl::StatusOr<Reply>)>> run;
  absl::InlinedVector<uint64_t, 4> withdraw;
  uint64_t quiet = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (ended) return;
    ended = true;
    result = std::move(outcome);
    run.swap(thens);
    // A call that failed withdraws everything; one that succeeded only the
    // receives nothing came for (its request was delivered, or no reply).
    // The lists stay: each operation leaves them as it completes, and the
    // last one lets `self` go.
    withdraw = result->ok() ? pending_receives : pending;
    quiet = quiet_op;
  }
  // Raised once the lock is let go: a waiter spinning on it takes the lock
  // next, and would sleep on it (a futex round trip) were it still held.
  ended_flag.store(true, std::memory_order_release);
  ended_cv.notify_all();
  // Receives still posted would take a late reply into memory given back.
  for (uint64_t op : withdraw) {
    if (op == quiet) {
      WithdrawQuiet(op);
    } else {
      (void)client->CancelAsync(Operation{op});
    }
  }
  for (auto& fn : run) fn(*result);
}

void CallState::Settled(uint64_t op_id) {
  for (auto* list : {&pending, &pending_receives}) {
    auto it = std::find(list->begin(), list->end(), op_id);
    if (it != list->end()) list->erase(it);
  }
  if (op_id == quiet_op) quiet_op = 0;
  if (pending.empty()) self.reset();  // a callback running holds the call meanwhile
}

void CallState::ForgetQuiet() {
  uint64_t op;
  {
    std::lock_guard<std::mutex> lock(mu);
    op = quiet_op;
  }
  // Not under mu: Forget takes the ring's lock, which a thread running
  // callbacks lets go of before it takes mu.
  if (op == 0 || !Submit::Forget(*client, op)) return;
  std::lock_guard<std::mutex> lock(mu);
  Settled(op);
}

void CallState::WithdrawQuiet(uint64_t op_id) {
  // Under mu, as Start: the cancel's completion finds it pending.
  std::lock_guard<std::mutex> lock(mu);
  auto cancel = Submit::Cancel(*client, op_id, Completion(Step::kQuietWithdrawn));
  if (cancel.ok()) {
    Submitted(cancel->id, /*receive=*/false);
  }  // else the session is gone: its failure completes the send as any other
}

void CallState::OnQuietWithdrawn(const Completed& done) {
  // OK: the daemon had it, and fails it CANCELLED (its callback settles it).
  if (done.status.code() == absl::StatusCode::kNotFound) ForgetQuiet();
}

Session::Callback CallState::Completion(Step step) {
  return [state = this, step](const wire::Completion& c) {
    // Held while the step runs: it may end the call, settle the quiet
    // request, or submit more.
    std::shared_ptr<CallState> hold;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      hold = state->self;  // set: this operation was pending
      state->Settled(c.op_id);
    }
    const Completed done = ToCompleted(c);
    switch (step) {
      case Step::kRequestSent:
        state->OnRequestSent(done);
        break;
      case Step::kReplyMessage:
        state->OnReplyMessage(done);
        break;
      case Step::kReplyTensor:
        state->OnReplyTensor(done);
        break;
      case Step::kQuietWithdrawn:
        state->OnQuietWithdrawn(done);
        break;
    }
  };
}

void CallState::OnRequestSent(const Completed& done) {
  if (done.status.ok()) return;
  End(absl::Status(done.status.code(),
                   absl::StrCat("call ", method, " to ", to, ": ", done.status.message())));
}

void CallState::OnReplyMessage(const Completed& done) {
  if (!done.status.ok()) {
    End(absl::Status(done.status.code(),
                     absl::StrCat("call ", method, " to ", to, ": ", done.status.message())));
    return;
  }
  ForgetQuiet();  // a reply: the request arrived
  const auto* message = static_cast<const uint8_t*>(landing->data);
  wire::CallFrame frame;
  if (auto st = wire::DecodeCallFrame({message, done.length}, frame); !st.ok()) {
    End(absl::DataLossError(
        absl::StrCat("call ", method, " to ", to, ": the reply: ", st.message())));
    return;
  }
  if (frame.kind != wire::CallKind::kReply || frame.call_id != call_id) {
    End(absl::DataLossError(
        absl::StrCat("call ", method, " to ", to, ": the reply does not answer this call")));
    return;
  }
  if (frame.code != 0) {
    End(absl::Status(static_cast<absl::StatusCode>(frame.code), frame.message));
    return;
  }
  uint64_t total = 0;
  for (const wire::CallTensor& t : frame.tensors) total += t.bytes;
  if (total > max_reply_bytes) {
    End(absl::ResourceExhaustedError(absl::StrCat("call ", method, " to ", to, ": the reply's ",
                                                  total, " bytes of tensors exceed the call's ",
                                                  "max_reply_bytes of ", max_reply_bytes)));
    return;
  }
  std::vector<Tensor> tensors = InlineTensors(frame, message, landing->buffer);
  struct Post {
    size_t index;
    Tensor into;
  };
  std::vector<Post> posts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const wire::CallTensor& t = frame.tensors[i];
    const bool inline_tensor = t.placement == wire::Placement::kInline;
    if (i < reply_into.size()) {  // the caller's own tensor
      if (t.bytes > reply_into[i].bytes()) {
        End(absl::ResourceExhaustedError(
            absl::StrCat("call ", method, " to ", to, ": reply tensor ", i, " has ", t.bytes,
                         " bytes; reply_into[", i, "] holds ", reply_into[i].bytes())));
        return;
      }
      const bool posted = wire::ReplyTensorApart(reply_apart, i);
      if (inline_tensor) {  // small: copied out of the reply message, here
        if (t.bytes > 0) std::memcpy(reply_into[i].data, tensors[i].data, t.bytes);
      } else if (!posted) {  // apart, but not posted with the request: now
        posts.push_back({i, reply_into[i]});
      }
      tensors[i] = reply_into[i];
      tensors[i].desc.dtype = t.desc.dtype;
      tensors[i].desc.ndim = t.desc.ndim;
      tensors[i].desc.shape = t.desc.shape;
      tensors[i].desc.has_strides = false;
      continue;
    }
    if (inline_tensor) {
      tensors[i].owner = landing;  // the view keeps the landing block
      continue;
    }
    auto landed = runtime->Land(t.desc, t.bytes);
    if (!landed.ok()) {
      End(landed.status());
      return;
    }
    tensors[i] = *landed;
    posts.push_back({i, *std::move(landed)});
  }
  // Separate tensors posted before the request count as awaited already.
  bool complete;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (ended) return;
    reply.header.assign(frame.header.begin(), frame.header.end());
    reply.tensors = std::move(tensors);
    awaited += static_cast<int>(posts.size());
    for (size_t i = 0; i < reply_into.size(); ++i) {  // posted, but nothing comes for them
      if (wire::ReplyTensorApart(reply_apart, i) &&
          (i >= frame.tensors.size() || frame.tensors[i].placement != wire::Placement::kSeparate)) {
        --awaited;
      }
    }
    awaited -= 1;  // the reply message itself
    complete = awaited == 0;
  }
  for (const Post& p : posts) {
    auto resolved = runtime->Resolve(p.into);  // registered memory or GPU (checked at CallAsync)
    if (!resolved.ok()) {
      End(resolved.status());
      return;
    }
    Source s = *std::move(resolved);
    s.bytes = frame.tensors[p.index].bytes;
    auto st = Start(/*receive=*/true, Step::kReplyTensor, [&](Session::Callback then) {
      return Submit::PostRecv(*client, endpoint, wire::CallTensorTag(call_id, p.index, true),
                              *s.buffer, s.offset, s.bytes,
                              {.timeout_ms = RemainingMs(deadline), .from = to}, std::move(then));
    });
    if (!st.ok()) {
      End(st);
      return;
    }
  }
  if (complete) {
    Reply r;
    {
      std::lock_guard<std::mutex> lock(mu);
      r = std::move(reply);
    }
    End(std::move(r));
  }
}

void CallState::OnReplyTensor(const Completed& done) {
  if (!done.status.ok()) {
    End(absl::Status(
        done.status.code(),
        absl::StrCat("call ", method, " to ", to, ": a reply tensor: ", done.status.message())));
    return;
  }
  Reply r;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (ended || --awaited > 0) return;
    r = std::move(reply);
  }
  End(std::move(r));
}

}  // namespace internal

namespace {

// The least room a reply message gets: its frame and a few small tensors.
constexpr uint32_t kMinReplyRoom = 256;

// The client's progress thread ends calls. A waiter spins a little before it
// sleeps: a reply due within microseconds is then seen without a futex
// wake-up on either side.
constexpr absl::Duration kSpinBeforeSleep = absl::Microseconds(50);

bool SpinUntilEnded(const internal::CallState& state, absl::Time until) {
  const absl::Time spin_until = std::min(until, axon::Now() + kSpinBeforeSleep);
  for (int i = 0;; ++i) {
    if (state.ended_flag.load(std::memory_order_acquire)) return true;
    if (i % 64 == 63 && axon::Now() > spin_until) return false;
    CpuRelax();
  }
}

}  // namespace

absl::StatusOr<Reply> PendingCall::Wait() const {
  SpinUntilEnded(*state_, absl::InfiniteFuture());
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->ended_cv.wait(lock, [this] { return state_->ended; });
  return *state_->result;
}

bool PendingCall::WaitFor(int timeout_ms) const {
  const absl::Time until = axon::Now() + absl::Milliseconds(timeout_ms);
  if (SpinUntilEnded(*state_, until)) return true;
  std::unique_lock<std::mutex> lock(state_->mu);
  return state_->ended_cv.wait_until(lock, absl::ToChronoTime(until),
                                     [this] { return state_->ended; });
}

bool PendingCall::done() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->ended;
}

void PendingCall::Then(std::function<void(absl::StatusOr<Reply>)> done) const {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->ended) {
      state_->thens.push_back(std::move(done));
      return;
    }
  }
  done(*state_->result);
}

std::future<absl::StatusOr<Reply>> PendingCall::Future() const {
  auto promise = std::make_shared<std::promise<absl::StatusOr<Reply>>>();
  auto future = promise->get_future();
  Then([promise](absl::StatusOr<Reply> r) { promise->set_value(std::move(r)); });
  return future;
}

void PendingCall::Cancel() const { state_->End(absl::CancelledError("cancelled by the caller")); }

uint64_t PendingCall::id() const { return state_->call_id; }

Caller::Caller(Client& client, std::string endpoint)
    : client_(client), endpoint_(std::move(endpoint)) {}
Caller::~Caller() = default;

absl::StatusOr<PendingCall> Caller::CallAsync(const std::string& to, absl::string_view method,
                                              absl::string_view header,
                                              absl::Span<const Tensor> tensors,
                                              const CallOptions& options) {
  if (method.empty() || method.size() > wire::kMaxMethodName) {
    return absl::InvalidArgumentError(absl::StrCat("a method name has 1 to ", wire::kMaxMethodName,
                                                   " bytes; this one has ", method.size()));
  }
  if (header.size() > wire::kMaxCallHeader) {
    return absl::InvalidArgumentError(absl::StrCat("a call's header has at most ",
                                                   wire::kMaxCallHeader, " bytes; this one has ",
                                                   header.size()));
  }
  if (options.reply_into.size() > CallOptions::kMaxReplyInto) {
    return absl::InvalidArgumentError(
        absl::StrCat("reply_into takes at most ", CallOptions::kMaxReplyInto,
                     " tensors; this call has ", options.reply_into.size()));
  }
  // Which of reply_into the daemon writes in place (a receive posted now):
  // GPU tensors and host ones past inline_bytes. Smaller host ones come
  // inside the reply message and are copied from it: cheaper than a message
  // of their own.
  uint64_t apart = 0;
  for (size_t i = 0; i < options.reply_into.size(); ++i) {
    const Tensor& t = options.reply_into[i];
    if (auto st = internal::CallRuntime::CheckWritable(t, "a reply_into tensor"); !st.ok()) {
      return st;
    }
    if (t.on_gpu() || t.bytes() > options.inline_bytes) apart |= uint64_t{1} << i;
  }
  internal::CallRuntime& runtime = client_.call_runtime();
  auto state = std::allocate_shared<internal::CallState>(internal::Recycled<internal::CallState>());
  state->client = &client_;
  state->runtime = &runtime;
  state->endpoint = endpoint_;
  state->to = to;
  state->method = std::string(method);
  state->call_id = runtime.NextCallId();
  state->max_reply_bytes = options.max_reply_bytes;
  if (options.timeout_ms != 0) {
    state->deadline = axon::Now() + absl::Milliseconds(options.timeout_ms);
  }
  state->reply_into.assign(options.reply_into.begin(), options.reply_into.end());
  state->reply_apart = apart;

  wire::CallFrame frame{.kind = wire::CallKind::kRequest,
                        .call_id = state->call_id,
                        .timeout_ms = options.timeout_ms,
                        .method = method,
                        .reply_room = std::max<uint32_t>(options.reply_room, kMinReplyRoom),
                        .reply_apart = apart,
                        .header = {reinterpret_cast<const uint8_t*>(header.data()), header.size()}};
  if (auto st = internal::BuildCall(runtime, std::move(frame), tensors, options.inline_bytes,
                                    /*apart=*/0, state->request);
      !st.ok()) {
    return st;
  }
  bool gpu = false;
  for (const Tensor& t : tensors) gpu = gpu || t.on_gpu();
  if (gpu) {
    if (auto st = cuda::SynchronizeStream(options.cuda_stream); !st.ok()) return st;
  }
  // Everything the reply needs is posted before the request leaves.
  auto landing = runtime.host().Get(std::max<uint32_t>(options.reply_room, kMinReplyRoom));
  if (!landing.ok()) return landing.status();
  state->landing = *std::move(landing);
  const uint32_t timeout = options.timeout_ms;
  const OpOptions posted{.timeout_ms = timeout, .from = to};
  absl::InlinedVector<std::pair<size_t, internal::Source>, 4> into;
  for (size_t i = 0; i < state->reply_into.size(); ++i) {
    if (!wire::ReplyTensorApart(apart, i)) continue;
    auto source = runtime.Resolve(state->reply_into[i]);
    if (!source.ok()) return source.status();
    into.emplace_back(i, *std::move(source));
  }
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->awaited = 1 + static_cast<int>(into.size());
  }
  auto reply_op = state->Start(
      /*receive=*/true, internal::CallState::Step::kReplyMessage,
      [&](internal::Session::Callback done) {
        return internal::Submit::PostRecv(client_, endpoint_, wire::CallReplyTag(state->call_id),
                                          *state->landing->buffer, state->landing->offset,
                                          state->landing->size, posted, std::move(done));
      });
  if (!reply_op.ok()) return reply_op;
  for (const auto& [i, source] : into) {
    auto op = state->Start(
        /*receive=*/true, internal::CallState::Step::kReplyTensor,
        [&](internal::Session::Callback done) {
          return internal::Submit::PostRecv(
              client_, endpoint_, wire::CallTensorTag(state->call_id, i, /*reply=*/true),
              *source.buffer, source.offset, source.bytes, posted, std::move(done));
        });
    if (!op.ok()) {
      state->End(op);
      return op;
    }
  }
  absl::Status sent;
  {
    // The message goes quiet where the daemon takes that: its completion
    // would say nothing the reply does not.
    const bool quiet = internal::Submit::QuietSends(client_);
    bool message = true;
    std::lock_guard<std::mutex> lock(state->mu);  // see CallState::Start
    sent = internal::SendCall(
        client_, endpoint_, to, wire::kCallRequestTag, state->request, /*reply=*/false, timeout,
        [&] { return state->Completion(internal::CallState::Step::kRequestSent); },
        [&](Operation op) {
          if (quiet && std::exchange(message, false)) state->quiet_op = op.id;
          state->Submitted(op.id, /*receive=*/false);
        },
        quiet);
  }
  if (!sent.ok()) {
    state->End(sent);
    return sent;
  }
  return PendingCall(std::move(state));
}

absl::StatusOr<Reply> Caller::Call(const std::string& to, absl::string_view method,
                                   absl::string_view header, absl::Span<const Tensor> tensors,
                                   const CallOptions& options) {
  auto call = CallAsync(to, method, header, tensors, options);
  if (!call.ok()) return call.status();
  return call->Wait();
}

}  // namespace axon
