#include "axon/client.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "axon/tensor.h"
#include "client/lib/call_runtime.h"
#include "client/lib/forked.h"
#include "client/lib/reconnector.h"
#include "client/lib/session.h"
#include "client/lib/slot_hold.h"
#include "client/lib/submit.h"
#include "common/cuda/driver.h"
#include "common/defaults.h"
#include "common/errno_status.h"
#include "common/fd_passing.h"
#include "common/rpc/channel.h"
#include "common/unix_socket.h"
#include "common/version.h"

namespace axon {

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  internal::WatchForFork();
  auto session = std::make_shared<internal::Session>();
  session->socket_path = options.socket_path.empty() ? DefaultSocketPath() : options.socket_path;
  session->control = v1::Control::NewStub(rpc::MakeControlChannel(session->socket_path));
  session->timeout_ms = options.timeout_ms;
  session->client_name = options.client_name;
  session->placement = options.placement;
  session->keep_state = options.reconnect;
  if (auto st = session->Open(); !st.ok()) return st;
  std::unique_ptr<Client> client(new Client(std::move(session)));
  if (options.progress_thread) client->StartProgressThread();
  if (options.reconnect) {
    client->session_->reconnecting = true;
    client->reconnector_ = std::make_unique<internal::Reconnector>(
        client->session_, internal::Reconnector::Options{.initial_ms = options.reconnect_initial_ms,
                                                         .max_ms = options.reconnect_max_ms,
                                                         .notify = options.on_connection});
  }
  return client;
}

absl::Status Client::PingDaemon() {
  auto op = session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kNop)});
  if (!op.ok()) return op.status();
  auto completion = session_->WaitFor(*op, session_->timeout_ms);
  if (!completion.ok()) return completion.status();
  return absl::Status(static_cast<absl::StatusCode>(completion->code), "");
}

namespace {

// Fills `s` (zeroed, in place: an entry is 240 bytes, and each copy of one
// showed in profiles).
absl::Status Transfer(wire::RingOp op, const std::string& endpoint, uint64_t tag,
                      const Buffer& buffer, size_t offset, size_t length, const OpOptions& options,
                      wire::Submission& s) {
  if (auto st = internal::CheckEndpointName(endpoint); !st.ok()) return st;
  if (buffer.region_id() == 0) return absl::InvalidArgumentError("the buffer was moved from");
  s.op = static_cast<uint16_t>(op);
  s.timeout_ms = options.timeout_ms;
  s.region = buffer.region_id();
  s.offset = offset;
  s.length = length;
  s.tag = tag;
  wire::SetNameField(s.endpoint, endpoint);
  return absl::OkStatus();
}

// The daemon must not read a GPU tensor before the work producing it is
// done (nor overwrite one still being read): wait for the caller's stream.
absl::Status StreamOrder(const Buffer& buffer, const OpOptions& options) {
  if (!buffer.on_gpu()) return absl::OkStatus();
  return cuda::SynchronizeStream(options.cuda_stream);
}

}  // namespace

absl::StatusOr<Operation> Client::Send(const std::string& from, const std::string& to, uint64_t tag,
                                       const Buffer& buffer, size_t offset, size_t length,
                                       OpOptions options) {
  const View part{&buffer, offset, length};
  return Send(from, to, tag, absl::MakeConstSpan(&part, 1), options);
}

namespace {

// A gathered send's submissions, one per part (the last without kMore).
using Parts = absl::InlinedVector<wire::Submission, 4>;

absl::Status SendParts(const std::string& from, const std::string& to, uint64_t tag,
                       absl::Span<const View> parts, const OpOptions& options, Parts& all) {
  if (parts.empty()) return absl::InvalidArgumentError("a send has at least one part");
  if (parts.size() > wire::kMaxSendParts) {
    return absl::InvalidArgumentError(
        absl::StrCat("a send has at most ", wire::kMaxSendParts, " parts"));
  }
  all.resize(parts.size());
  bool gpu = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].buffer == nullptr) return absl::InvalidArgumentError("a part has no buffer");
    wire::Submission& s = all[i];
    if (auto st = Transfer(wire::RingOp::kSend, from, tag, *parts[i].buffer, parts[i].offset,
                           parts[i].length, options, s);
        !st.ok()) {
      return st;
    }
    if (to.empty() || !wire::SetNameField(s.peer, to)) {
      return absl::InvalidArgumentError("the destination is 'endpoint' or 'node/endpoint'");
    }
    if (i + 1 < parts.size()) s.flags = wire::kSubmissionMore;
    gpu = gpu || parts[i].buffer->on_gpu();
  }
  if (gpu) {
    if (auto st = cuda::SynchronizeStream(options.cuda_stream); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status ReceiveInto(const std::string& endpoint, uint64_t tag, const Buffer& buffer,
                         size_t offset, size_t length, const OpOptions& options,
                         wire::Submission& s) {
  if (auto st =
          Transfer(wire::RingOp::kPostRecv, endpoint, tag, buffer, offset, length, options, s);
      !st.ok()) {
    return st;
  }
  if (!options.from.empty() && !wire::SetNameField(s.peer, options.from)) {
    return absl::InvalidArgumentError("the sender is 'endpoint' or 'node/endpoint'");
  }
  return StreamOrder(buffer, options);
}

}  // namespace

absl::StatusOr<Operation> Client::Send(const std::string& from, const std::string& to, uint64_t tag,
                                       absl::Span<const View> parts, OpOptions options) {
  return internal::Submit::Send(*this, from, to, tag, parts, options, nullptr);
}

absl::StatusOr<Operation> Client::PostRecv(const std::string& endpoint, uint64_t tag,
                                           const Buffer& buffer, size_t offset, size_t length,
                                           OpOptions options) {
  return internal::Submit::PostRecv(*this, endpoint, tag, buffer, offset, length, options, nullptr,
                                    /*keep=*/true);
}

namespace internal {

absl::StatusOr<Operation> Submit::Send(Client& client, const std::string& from,
                                       const std::string& to, uint64_t tag,
                                       absl::Span<const View> parts, const OpOptions& options,
                                       Session::Callback done, bool quiet) {
  Parts all;
  if (auto st = SendParts(from, to, tag, parts, options, all); !st.ok()) return st;
  if (quiet) all.back().flags |= wire::kSubmissionQuiet;  // the whole send's entry
  auto op = client.session_->EnqueueAll(absl::MakeSpan(all), std::move(done));
  if (!op.ok()) return op.status();
  return Operation{*op};
}

bool Submit::QuietSends(const Client& client) { return client.session_->quiet_sends; }

bool Submit::Forget(Client& client, uint64_t op_id) { return client.session_->Forget(op_id); }

absl::StatusOr<Operation> Submit::Cancel(Client& client, uint64_t target, Session::Callback done) {
  wire::Submission cancel{.op = static_cast<uint16_t>(wire::RingOp::kCancel), .target = target};
  auto op = client.session_->EnqueueAll(absl::MakeSpan(&cancel, 1), std::move(done));
  if (!op.ok()) return op.status();
  return Operation{*op};
}

absl::StatusOr<Operation> Submit::PostRecv(Client& client, const std::string& endpoint,
                                           uint64_t tag, const Buffer& buffer, size_t offset,
                                           size_t length, const OpOptions& options,
                                           Session::Callback done, bool keep) {
  wire::Submission s;
  if (auto st = ReceiveInto(endpoint, tag, buffer, offset, length, options, s); !st.ok()) {
    return st;
  }
  auto op = client.session_->EnqueueAll(absl::MakeSpan(&s, 1), std::move(done), keep);
  if (!op.ok()) return op.status();
  return Operation{*op};
}

}  // namespace internal

absl::StatusOr<size_t> Client::SetReceiveArea(const HostBuffer& area, size_t slot_size) {
  auto op = session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kSetArea),
                               .region = area.region_id(),
                               .slot_size = slot_size});
  if (!op.ok()) return op.status();
  auto done = Wait(Operation{*op}, session_->timeout_ms);
  if (!done.ok()) return done.status();
  if (!done->status.ok()) return done->status;
  std::lock_guard<AdaptiveMutex> lock(session_->ring_mu);
  session_->area = static_cast<const uint8_t*>(area.data());
  session_->area_slot_size = slot_size;
  session_->area_region = area.region_id();
  return done->length;
}

absl::StatusOr<Message> Client::Receive(const std::string& endpoint, int timeout_ms) {
  auto arrival = session_->WaitForArrival(endpoint, timeout_ms);
  if (!arrival.ok()) return arrival.status();
  return internal::ArrivalMessage(*arrival, session_->area, session_->area_slot_size);
}

absl::Status Client::Release(const Message& message) { return session_->ReleaseSlot(message.slot); }

absl::Status Client::UseReceiveArea(uint32_t slot_bytes, uint32_t slots) {
  return call_runtime().ReceiveArea(slot_bytes, slots).status();
}

Received Client::Hold(const Message& message) {
  // The runtime as it is: Hold runs on the completion thread, also while
  // the Client goes, when nothing may be started.
  std::shared_ptr<const Buffer> area;
  {
    std::lock_guard<std::mutex> lock(call_runtime_mu_);
    if (call_runtime_) area = call_runtime_->Area();
  }
  Received held{.endpoint = message.endpoint, .from = message.from, .tag = message.tag};
  const int64_t shape[1] = {static_cast<int64_t>(message.length)};
  // A uint8 vector of any length is a valid descriptor.
  held.tensor.desc = *TensorDesc::Contiguous(dtype::kUInt8, shape);
  held.tensor.data = const_cast<uint8_t*>(message.data);
  held.tensor.buffer = area.get();
  held.tensor.owner = std::make_shared<internal::SlotHold>(session_, std::move(area), message.slot);
  return held;
}

absl::Status Client::CancelAsync(Operation op) {
  auto cancel =
      session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kCancel), .target = op.id});
  if (!cancel.ok()) return cancel.status();
  // NOT_FOUND (it finished first) is the usual answer and needs no one.
  OnComplete(Operation{*cancel}, [](const Completed&) {});
  return absl::OkStatus();
}

absl::Status Client::Cancel(Operation op) {
  auto cancel =
      session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kCancel), .target = op.id});
  if (!cancel.ok()) return cancel.status();
  auto done = Wait(Operation{*cancel}, session_->timeout_ms);
  if (!done.ok()) return done.status();
  return done->status;
}

namespace internal {

absl::Status CheckEndpointName(const std::string& name) {
  if (name.empty() || name.size() >= wire::kEndpointNameSize) {
    return absl::InvalidArgumentError("endpoint names are 1 to 63 characters");
  }
  return absl::OkStatus();
}

Completed ToCompleted(const wire::Completion& completion) {
  Completed done;
  if (completion.code != 0) {
    std::string why = wire::NameField(completion.message);
    if (why.empty()) why = "the daemon refused or failed it";
    done.status = absl::Status(static_cast<absl::StatusCode>(completion.code), why);
  }
  done.length = completion.length;
  done.tag = completion.tag;
  return done;
}

}  // namespace internal

absl::StatusOr<Completed> Client::Wait(Operation op, int timeout_ms) {
  auto completion = session_->WaitFor(op.id, timeout_ms);
  if (!completion.ok()) return completion.status();
  return internal::ToCompleted(*completion);
}

void Client::OnComplete(Operation op, std::function<void(const Completed&)> done) {
  if (auto st = session_->NotForked(); !st.ok()) {  // before a lock the parent may hold
    done(Completed{.status = st});
    return;
  }
  internal::Session::RingLock lock(session_->ring_mu);
  session_->AddCallback(op.id, [done = std::move(done)](const wire::Completion& c) {
    done(internal::ToCompleted(c));
  });
  session_->RunCallbacks(lock);  // it may have finished already
}

void Client::OnArrival(const std::string& endpoint, std::function<void(const Message&)> handler) {
  if (session_->forked_away()) return;  // nothing arrives for the parent's session here
  internal::Session::RingLock lock(session_->ring_mu);
  if (!handler) {
    session_->arrival_handlers.erase(endpoint);
    return;
  }
  const uint8_t* area = session_->area;
  const uint64_t slot_size = session_->area_slot_size;
  auto run = std::make_shared<const internal::Session::Callback>(
      [handler = std::move(handler), area, slot_size](const wire::Completion& c) {
        handler(internal::ArrivalMessage(c, area, slot_size));
      });
  for (auto it = session_->arrivals.begin(); it != session_->arrivals.end();) {
    if (internal::ArrivalEndpoint(*it) == endpoint) {
      session_->arrivals_due.push_back({run, *it});
      it = session_->arrivals.erase(it);
    } else {
      ++it;
    }
  }
  session_->arrival_handlers[endpoint] = std::move(run);
  session_->RunCallbacks(lock);
}

std::future<Completed> Client::Future(Operation op) {
  auto promise = std::make_shared<std::promise<Completed>>();
  auto future = promise->get_future();
  OnComplete(op, [promise](const Completed& c) { promise->set_value(c); });
  return future;
}

absl::Status Client::Progress(int timeout_ms) { return session_->Progress(timeout_ms); }

Client::Client(std::shared_ptr<internal::Session> session) : session_(std::move(session)) {}

void Client::StartProgressThread() {
  if (session_->forked_away()) return;  // the session refuses everything: nothing to drive
  std::lock_guard<std::mutex> lock(progress_mu_);
  if (progress_.joinable()) return;
  progress_ = std::thread([this] {
    // Named for top -H and profiles: the thread that completes this
    // process's calls and operations.
    ::pthread_setname_np(::pthread_self(), "axon-progress");
    while (!stop_progress_) {
      // With the daemon gone there is nothing to drive: no busy loop.
      if (!session_->Progress(50).ok() && session_->daemon_gone) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
}

internal::CallRuntime& Client::call_runtime() {
  if (internal::CallRuntime* ready = call_runtime_ready_.load(std::memory_order_acquire)) {
    return *ready;
  }
  StartProgressThread();  // calls complete on it
  std::lock_guard<std::mutex> lock(call_runtime_mu_);
  if (!call_runtime_) call_runtime_ = std::make_shared<internal::CallRuntime>(*this);
  call_runtime_ready_.store(call_runtime_.get(), std::memory_order_release);
  return *call_runtime_;
}

Client::~Client() {
  if (session_->forked_away()) {
    // The parent's client: its threads are not here to join, its session
    // and the daemon's gRPC channel are not this process's to end.
    internal::KeepForever(std::make_shared<std::thread>(std::move(progress_)));
    internal::KeepForever(std::shared_ptr<internal::Reconnector>(std::move(reconnector_)));
    internal::KeepForever(std::move(call_runtime_));
    internal::KeepForever(session_);
    return;
  }
  reconnector_.reset();  // before anything it could re-attach goes
  stop_progress_ = true;
  if (progress_.joinable()) progress_.join();
  (void)Detach();
  session_->FailPending();
  call_runtime_ready_ = nullptr;
  call_runtime_.reset();
}

absl::Status Client::Detach() {
  // Before the reconnector: its stop eventfd is the parent's too.
  if (auto st = session_->NotForked(); !st.ok()) return st;
  reconnector_.reset();
  return session_->Detach();
}
uint64_t Client::session_id() const { return session_->Credentials().first; }
const std::string& Client::node_name() const { return session_->node_name; }
bool Client::connected() const { return !session_->daemon_gone; }

absl::StatusOr<std::string> Client::BindEndpoint(const std::string& name) {
  return session_->BindEndpoint(name);
}

absl::Status Client::UnbindEndpoint(const std::string& name) {
  return session_->UnbindEndpoint(name);
}

absl::Status Client::ReportCalls(const std::string& endpoint,
                                 const std::vector<MethodStats>& stats) {
  v1::ReportCallsRequest request;
  for (const MethodStats& s : stats) {
    v1::MethodCalls* m = request.add_methods();
    m->set_endpoint(endpoint);
    m->set_method(s.method);
    m->set_calls(s.calls);
    m->set_errors(s.errors);
    m->set_in_flight(s.in_flight);
    m->set_dropped_replies(s.dropped_replies);
    m->set_p50_us(s.p50_us);
    m->set_p99_us(s.p99_us);
    for (uint64_t n : s.latency_below_pow2_us) m->add_latency_below_pow2_us(n);
    m->set_latency_sum_us(s.latency_sum_us);
  }
  return session_->ReportCalls(std::move(request));
}

}  // namespace axon
