#include "axon/client.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "axon/call.h"
#include "client/lib/call_runtime.h"
#include "client/lib/session.h"
#include "common/cuda/driver.h"
#include "common/defaults.h"
#include "common/errno_status.h"
#include "common/fd_passing.h"
#include "common/rpc/channel.h"
#include "common/rpc/status_convert.h"
#include "common/unix_socket.h"
#include "common/version.h"

namespace axon {
namespace {

void SetDeadline(grpc::ClientContext& context, int timeout_ms) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

}  // namespace

namespace internal {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

absl::string_view ArrivalEndpoint(const wire::Completion& arrival) {
  const absl::string_view names = wire::NameView(arrival.message);
  return names.substr(0, names.find('\n'));
}

Message ArrivalMessage(const wire::Completion& arrival, const uint8_t* area, uint64_t slot_size) {
  const absl::string_view names = wire::NameView(arrival.message);
  const size_t newline = names.find('\n');
  Message m;
  m.endpoint = std::string(names.substr(0, newline));
  m.from = newline == absl::string_view::npos ? "" : std::string(names.substr(newline + 1));
  m.tag = arrival.tag;
  m.slot = arrival.op_id;
  m.length = arrival.length;
  m.data = area + m.slot * slot_size;
  return m;
}

absl::StatusOr<wire::SessionReply> Session::Call(wire::SessionRequest request,
                                                 absl::Span<const int> fds) {
  std::lock_guard<std::mutex> lock(mu);
  if (!socket.valid()) return absl::FailedPreconditionError("the session is detached");
  request.request_id = next_request++;
  if (auto st = SendMessage(socket.get(), wire::EncodeSessionRequest(request), fds); !st.ok()) {
    return st;
  }
  pollfd pfd{socket.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return absl::DeadlineExceededError("axond did not answer on the session socket");
  if (ready < 0) return ErrnoStatus(errno, "poll(session socket)");
  auto message = ReceiveMessage(socket.get());
  if (!message.ok()) return message.status();
  if (message->eof) return absl::UnavailableError("axond closed the session socket");
  auto reply = wire::DecodeSessionReply(message->bytes);
  if (!reply.ok()) return reply.status();
  if (reply->request_id != request.request_id && request.type != wire::SessionMessageType::kHello) {
    return absl::InternalError("reply to another request on the session socket");
  }
  return reply;
}

Session::~Session() {
  if (ring_memory != nullptr) ::munmap(ring_memory, ring_bytes);
}

absl::Status Session::SetupRings() {
  const size_t one = ring::RingBytes(wire::kRingSlots, wire::kRingSlotSize);
  ring_bytes = 2 * one;
  UniqueFd memfd(::memfd_create("axon-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (::ftruncate(memfd.get(), static_cast<off_t>(ring_bytes)) != 0 ||
      ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return ErrnoStatus(errno, "sizing the rings memfd");
  }
  void* memory = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (memory == MAP_FAILED) return ErrnoStatus(errno, "mmap(rings)");
  ring_memory = memory;
  auto* base = static_cast<uint8_t*>(memory);
  for (size_t offset : {size_t{0}, one}) {
    if (auto st =
            ring::SpscRing::Initialize(base + offset, one, wire::kRingSlots, wire::kRingSlotSize);
        !st.ok()) {
      return st;
    }
  }
  auto sq = ring::SpscRing::Attach(base, one, wire::kRingSlots, wire::kRingSlotSize);
  auto cq = ring::SpscRing::Attach(base + one, one, wire::kRingSlots, wire::kRingSlotSize);
  if (!sq.ok()) return sq.status();
  if (!cq.ok()) return cq.status();
  submissions.emplace(*sq);
  completions.emplace(*cq);
  daemon_bell.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  client_bell.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!daemon_bell.valid() || !client_bell.valid()) return ErrnoStatus(errno, "eventfd");
  const int fds[] = {memfd.get(), daemon_bell.get(), client_bell.get()};
  auto reply = Call({.type = wire::SessionMessageType::kSetupRings, .length = ring_bytes}, fds);
  if (!reply.ok()) return reply.status();
  return reply->status();
}

absl::StatusOr<uint64_t> Session::Enqueue(wire::Submission submission) {
  return EnqueueAll(absl::MakeSpan(&submission, 1));  // no vector to allocate per message
}

absl::StatusOr<uint64_t> Session::EnqueueAll(absl::Span<wire::Submission> all) {
  std::lock_guard<std::mutex> lock(ring_mu);
  if (!submissions) return absl::FailedPreconditionError("the session has no rings");
  if (detached) return absl::FailedPreconditionError("the session is detached");
  uint64_t op_id = 0;
  for (wire::Submission& submission : all) {
    submission.op_id = op_id = next_op++;
    while (true) {
      auto pushed = submissions->TryPush(wire::EntryBytes(submission));
      if (!pushed.ok()) return pushed.status();
      if (*pushed) break;
      // Full. The daemon stops taking submissions while this side's
      // completion ring is full, so take completions off it meanwhile (or
      // both would wait).
      if (auto st = DrainCompletions(); !st.ok()) return st;
      if (submissions->ConsumerNeedsWakeup()) RingDaemon();
      std::this_thread::yield();
    }
  }
  if (submissions->ConsumerNeedsWakeup()) RingDaemon();
  return op_id;
}

void Session::RingDaemon() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(daemon_bell.get(), &one, sizeof(one));
}

absl::Status Session::DrainCompletions() {
  std::array<uint8_t, wire::kRingSlotSize> entry;  // on the stack: this runs while spinning
  while (true) {
    auto n = completions->TryPop(absl::MakeSpan(entry));
    if (!n.ok()) return n.status();
    if (*n < 0) return absl::OkStatus();
    auto completion = wire::ReadCompletion(absl::MakeConstSpan(entry).subspan(0, *n));
    if (!completion) return absl::DataLossError("malformed completion on the ring");
    if (completion->flags & wire::kCompletionArrival) {
      if (!arrival_handlers.empty()) {
        auto handler = arrival_handlers.find(ArrivalEndpoint(*completion));
        if (handler != arrival_handlers.end()) {
          due.emplace_back(handler->second, *completion);
          continue;
        }
      }
      arrivals.push_back(*completion);
    } else if (auto callback = callbacks.find(completion->op_id); callback != callbacks.end()) {
      due.emplace_back(std::move(callback->second), *completion);
      callbacks.erase(callback);
    } else {
      finished[completion->op_id] = *completion;
    }
  }
}

absl::StatusOr<wire::Completion> Session::WaitFor(uint64_t op_id, int wait_ms) {
  std::unique_lock<std::mutex> lock(ring_mu);
  wire::Completion done;
  auto st = WaitLoop(lock, wait_ms, [&] {
    auto it = finished.find(op_id);
    if (it == finished.end()) return false;
    done = it->second;
    finished.erase(it);
    return true;
  });
  if (!st.ok()) return st;
  return done;
}

absl::StatusOr<wire::Completion> Session::WaitForArrival(const std::string& endpoint, int wait_ms) {
  std::unique_lock<std::mutex> lock(ring_mu);
  wire::Completion done;
  auto st = WaitLoop(lock, wait_ms, [&] {
    for (auto it = arrivals.begin(); it != arrivals.end(); ++it) {
      if (ArrivalEndpoint(*it) == endpoint) {
        done = *it;
        arrivals.erase(it);
        return true;
      }
    }
    return false;
  });
  if (!st.ok()) return st;
  return done;
}

absl::Status Session::Progress(int wait_ms) {
  std::unique_lock<std::mutex> lock(ring_mu);
  const uint64_t before = callbacks_run;
  return WaitLoop(lock, wait_ms, [&] { return callbacks_run != before; });
}

bool Session::RunCallbacks(std::unique_lock<std::mutex>& lock) {
  if (due.empty()) return false;
  std::vector<std::pair<Callback, wire::Completion>> run;
  run.swap(due);
  callbacks_run += run.size();
  lock.unlock();
  for (auto& [fn, completion] : run) fn(completion);
  lock.lock();
  if (due.empty()) {  // keep the storage for the next round
    run.clear();
    due.swap(run);
  }
  return true;
}

void Session::FailPending() {
  absl::flat_hash_map<uint64_t, Callback> waiting;
  absl::flat_hash_map<std::string, std::function<void(const wire::Completion&)>> handlers;
  {
    std::unique_lock<std::mutex> lock(ring_mu);
    RunCallbacks(lock);
    waiting.swap(callbacks);
    handlers.swap(arrival_handlers);
  }
  for (auto& [op_id, fn] : waiting) {
    wire::Completion failed{.op_id = op_id,
                            .code = static_cast<uint32_t>(absl::StatusCode::kUnavailable)};
    wire::SetNameField(failed.message, "the client detached from axond");
    fn(failed);
  }
}

void Session::AddCallback(uint64_t op_id, Callback done) {
  if (auto it = finished.find(op_id); it != finished.end()) {
    due.emplace_back(std::move(done), it->second);
    finished.erase(it);
    return;
  }
  callbacks[op_id] = std::move(done);
}

absl::Status Session::WaitLoop(std::unique_lock<std::mutex>& lock, int wait_ms,
                               const std::function<bool()>& take) {
  if (!completions) return absl::FailedPreconditionError("the session has no rings");
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Milliseconds(wait_ms);
  const absl::Time spin_until = start + absl::Microseconds(50);
  // The clock is read once every kSpinsPerClock empty polls: reading it on
  // each one showed in profiles (and absl's clock takes a lock that the
  // client's threads contend for).
  constexpr int kSpinsPerClock = 64;
  int spins = 0;
  absl::Time now = start;
  while (true) {
    if (take()) return absl::OkStatus();
    if (!due.empty()) {  // drained by another path (a full submission ring)
      RunCallbacks(lock);
      continue;
    }
    const size_t before = finished.size() + arrivals.size();
    if (auto st = DrainCompletions(); !st.ok()) return st;
    if (finished.size() + arrivals.size() != before || !due.empty()) {
      drained.notify_all();
      RunCallbacks(lock);
      continue;
    }
    if (++spins < kSpinsPerClock && wait_ms > 0) {
      // Spin without the lock: other threads submit, register callbacks and
      // wait meanwhile (spinning under it stalled every Send of the
      // client's other threads for the whole spin).
      lock.unlock();
      for (; spins < kSpinsPerClock && !completions->HasMessage(); ++spins) CpuRelax();
      lock.lock();
      continue;
    }
    spins = 0;
    now = absl::Now();
    if (now > deadline) {
      return absl::DeadlineExceededError("the operation did not complete in time");
    }
    if (now < spin_until) continue;
    if (sleeper) {  // another thread sleeps on the doorbell: wait for it to drain
      drained.wait_until(lock,
                         absl::ToChronoTime(std::min(deadline, now + absl::Milliseconds(10))));
      continue;
    }
    if (!completions->PrepareToSleep()) continue;
    sleeper = true;
    lock.unlock();
    pollfd pfd{client_bell.get(), POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(deadline - now)) + 1);
    uint64_t count;
    while (::read(client_bell.get(), &count, sizeof(count)) > 0) {
    }
    lock.lock();
    sleeper = false;
    completions->Awake();
    drained.notify_all();
  }
}

absl::Status Session::Detach() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!socket.valid()) return absl::OkStatus();
    detached = true;
    socket.Reset();  // closing it alone would end the session; Detach says so explicitly
  }
  v1::DetachRequest request;
  request.set_session_id(id);
  request.set_token(token);
  v1::DetachResponse response;
  grpc::ClientContext context;
  SetDeadline(context, timeout_ms);
  absl::Status st = rpc::FromGrpcStatus(control->Detach(&context, request, &response));
  // The socket's close may already have ended the session.
  return st.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : st;
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  auto session = std::make_shared<internal::Session>();
  const std::string socket_path =
      options.socket_path.empty() ? DefaultSocketPath() : options.socket_path;
  session->control = v1::Control::NewStub(rpc::MakeControlChannel(socket_path));
  session->timeout_ms = options.timeout_ms;

  v1::AttachRequest request;
  request.set_client_name(options.client_name);
  request.set_protocol_version(kControlProtocolVersion);
  v1::AttachResponse response;
  grpc::ClientContext context;
  SetDeadline(context, options.timeout_ms);
  if (grpc::Status st = session->control->Attach(&context, request, &response); !st.ok()) {
    absl::Status status = rpc::FromGrpcStatus(st);
    return absl::Status(status.code(),
                        absl::StrCat("attach to axond at ", socket_path, ": ", status.message()));
  }
  session->id = response.session_id();
  session->token = response.token();
  session->node_name = response.node_name();

  auto socket = ConnectUnixSocket(response.session_socket(), SOCK_SEQPACKET);
  if (!socket.ok()) {
    (void)session->Detach();
    return socket.status();
  }
  session->socket = *std::move(socket);
  wire::SessionRequest hello{
      .type = wire::SessionMessageType::kHello, .session_id = session->id, .token = session->token};
  auto reply = session->Call(hello, {});
  if (!reply.ok() || !reply->status().ok()) {
    absl::Status st = reply.ok() ? reply->status() : reply.status();
    session->socket.Reset();
    return absl::Status(st.code(), absl::StrCat("session socket: ", st.message()));
  }
  if (auto st = session->SetupRings(); !st.ok()) {
    (void)session->Detach();
    return absl::Status(st.code(), absl::StrCat("setting up the rings: ", st.message()));
  }
  std::unique_ptr<Client> client(new Client(std::move(session)));
  if (options.progress_thread) client->StartProgressThread();
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

absl::StatusOr<wire::Submission> Transfer(wire::RingOp op, const std::string& endpoint,
                                          uint64_t tag, const Buffer& buffer, size_t offset,
                                          size_t length, OpOptions options) {
  if (endpoint.empty() || endpoint.size() >= wire::kEndpointNameSize) {
    return absl::InvalidArgumentError("endpoint names are 1 to 63 characters");
  }
  if (buffer.region_id() == 0) return absl::InvalidArgumentError("the buffer was moved from");
  wire::Submission s{.op = static_cast<uint16_t>(op),
                     .timeout_ms = options.timeout_ms,
                     .region = buffer.region_id(),
                     .offset = offset,
                     .length = length,
                     .tag = tag};
  wire::SetNameField(s.endpoint, endpoint);
  return s;
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
  auto s = Transfer(wire::RingOp::kSend, from, tag, buffer, offset, length, options);
  if (!s.ok()) return s.status();
  if (auto st = StreamOrder(buffer, options); !st.ok()) return st;
  if (to.empty() || !wire::SetNameField(s->peer, to)) {
    return absl::InvalidArgumentError("the destination is 'endpoint' or 'node/endpoint'");
  }
  auto op = session_->Enqueue(*s);
  if (!op.ok()) return op.status();
  return Operation{*op};
}

absl::StatusOr<Operation> Client::Send(const std::string& from, const std::string& to, uint64_t tag,
                                       absl::Span<const View> parts, OpOptions options) {
  if (parts.empty()) return absl::InvalidArgumentError("a send has at least one part");
  if (parts.size() > wire::kMaxSendParts) {
    return absl::InvalidArgumentError(
        absl::StrCat("a send has at most ", wire::kMaxSendParts, " parts"));
  }
  std::vector<wire::Submission> all;
  bool gpu = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].buffer == nullptr) return absl::InvalidArgumentError("a part has no buffer");
    auto s = Transfer(wire::RingOp::kSend, from, tag, *parts[i].buffer, parts[i].offset,
                      parts[i].length, options);
    if (!s.ok()) return s.status();
    if (to.empty() || !wire::SetNameField(s->peer, to)) {
      return absl::InvalidArgumentError("the destination is 'endpoint' or 'node/endpoint'");
    }
    if (i + 1 < parts.size()) s->flags = wire::kSubmissionMore;
    all.push_back(*s);
    gpu = gpu || parts[i].buffer->on_gpu();
  }
  if (gpu) {
    if (auto st = cuda::SynchronizeStream(options.cuda_stream); !st.ok()) return st;
  }
  auto op = session_->EnqueueAll(absl::MakeSpan(all));
  if (!op.ok()) return op.status();
  return Operation{*op};
}

absl::StatusOr<Operation> Client::PostRecv(const std::string& endpoint, uint64_t tag,
                                           const Buffer& buffer, size_t offset, size_t length,
                                           OpOptions options) {
  auto s = Transfer(wire::RingOp::kPostRecv, endpoint, tag, buffer, offset, length, options);
  if (!s.ok()) return s.status();
  if (!options.from.empty() && !wire::SetNameField(s->peer, std::string(options.from))) {
    return absl::InvalidArgumentError("the sender is 'endpoint' or 'node/endpoint'");
  }
  if (auto st = StreamOrder(buffer, options); !st.ok()) return st;
  auto op = session_->Enqueue(*s);
  if (!op.ok()) return op.status();
  return Operation{*op};
}

absl::StatusOr<size_t> Client::SetReceiveArea(const HostBuffer& area, size_t slot_size) {
  auto op = session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kSetArea),
                               .region = area.region_id(),
                               .length = slot_size});
  if (!op.ok()) return op.status();
  auto done = Wait(Operation{*op}, session_->timeout_ms);
  if (!done.ok()) return done.status();
  if (!done->status.ok()) return done->status;
  std::lock_guard<std::mutex> lock(session_->ring_mu);
  session_->area = static_cast<const uint8_t*>(area.data());
  session_->area_slot_size = slot_size;
  return done->length;
}

absl::StatusOr<Message> Client::Receive(const std::string& endpoint, int timeout_ms) {
  auto arrival = session_->WaitForArrival(endpoint, timeout_ms);
  if (!arrival.ok()) return arrival.status();
  return internal::ArrivalMessage(*arrival, session_->area, session_->area_slot_size);
}

absl::Status Client::Release(const Message& message) {
  auto op = session_->Enqueue(
      {.op = static_cast<uint16_t>(wire::RingOp::kRelease), .region = message.slot});
  return op.status();  // the daemon sends no completion for a release
}

absl::Status Client::CancelAsync(Operation op) {
  auto cancel =
      session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kCancel), .region = op.id});
  if (!cancel.ok()) return cancel.status();
  // NOT_FOUND (it finished first) is the usual answer and needs no one.
  OnComplete(Operation{*cancel}, [](const Completed&) {});
  return absl::OkStatus();
}

absl::Status Client::Cancel(Operation op) {
  auto cancel =
      session_->Enqueue({.op = static_cast<uint16_t>(wire::RingOp::kCancel), .region = op.id});
  if (!cancel.ok()) return cancel.status();
  auto done = Wait(Operation{*cancel}, session_->timeout_ms);
  if (!done.ok()) return done.status();
  return done->status;
}

namespace {

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

}  // namespace

absl::StatusOr<Completed> Client::Wait(Operation op, int timeout_ms) {
  auto completion = session_->WaitFor(op.id, timeout_ms);
  if (!completion.ok()) return completion.status();
  return ToCompleted(*completion);
}

void Client::OnComplete(Operation op, std::function<void(const Completed&)> done) {
  std::unique_lock<std::mutex> lock(session_->ring_mu);
  session_->AddCallback(
      op.id, [done = std::move(done)](const wire::Completion& c) { done(ToCompleted(c)); });
  session_->RunCallbacks(lock);  // it may have finished already
}

void Client::OnArrival(const std::string& endpoint, std::function<void(const Message&)> handler) {
  std::unique_lock<std::mutex> lock(session_->ring_mu);
  if (!handler) {
    session_->arrival_handlers.erase(endpoint);
    return;
  }
  const uint8_t* area = session_->area;
  const uint64_t slot_size = session_->area_slot_size;
  auto run = [handler = std::move(handler), area, slot_size](const wire::Completion& c) {
    handler(internal::ArrivalMessage(c, area, slot_size));
  };
  for (auto it = session_->arrivals.begin(); it != session_->arrivals.end();) {
    if (internal::ArrivalEndpoint(*it) == endpoint) {
      session_->due.emplace_back(run, *it);
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
  std::lock_guard<std::mutex> lock(progress_mu_);
  if (progress_.joinable()) return;
  progress_ = std::thread([this] {
    while (!stop_progress_) (void)session_->Progress(50);
  });
}

internal::CallRuntime& Client::call_runtime() {
  StartProgressThread();  // calls complete on it
  std::lock_guard<std::mutex> lock(call_runtime_mu_);
  if (!call_runtime_) call_runtime_ = std::make_shared<internal::CallRuntime>(*this);
  return *call_runtime_;
}

Client::~Client() {
  stop_progress_ = true;
  if (progress_.joinable()) progress_.join();
  (void)Detach();
  session_->FailPending();
  call_runtime_.reset();
}

absl::Status Client::Detach() { return session_->Detach(); }
uint64_t Client::session_id() const { return session_->id; }
const std::string& Client::node_name() const { return session_->node_name; }

absl::StatusOr<std::string> Client::BindEndpoint(const std::string& name) {
  v1::BindEndpointRequest request;
  request.set_session_id(session_->id);
  request.set_token(session_->token);
  request.set_name(name);
  v1::BindEndpointResponse response;
  grpc::ClientContext context;
  SetDeadline(context, session_->timeout_ms);
  if (grpc::Status st = session_->control->BindEndpoint(&context, request, &response); !st.ok()) {
    return rpc::FromGrpcStatus(st);
  }
  return response.address();
}

absl::Status Client::ReportCalls(const std::string& endpoint,
                                 const std::vector<MethodStats>& stats) {
  v1::ReportCallsRequest request;
  request.set_session_id(session_->id);
  request.set_token(session_->token);
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
  }
  v1::ReportCallsResponse response;
  grpc::ClientContext context;
  SetDeadline(context, session_->timeout_ms);
  return rpc::FromGrpcStatus(session_->control->ReportCalls(&context, request, &response));
}

absl::Status Client::UnbindEndpoint(const std::string& name) {
  v1::UnbindEndpointRequest request;
  request.set_session_id(session_->id);
  request.set_token(session_->token);
  request.set_name(name);
  v1::UnbindEndpointResponse response;
  grpc::ClientContext context;
  SetDeadline(context, session_->timeout_ms);
  return rpc::FromGrpcStatus(session_->control->UnbindEndpoint(&context, request, &response));
}

}  // namespace axon
