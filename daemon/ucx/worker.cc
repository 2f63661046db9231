#include "daemon/ucx/worker.h"

#include <chrono>
#include <utility>

#include "common/log.h"
#include "daemon/ucx/request.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {

PendingData::~PendingData() {
  if (descriptor_ != nullptr) ucp_am_data_release(worker_.handle(), descriptor_);
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(const Context& context) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h handle = nullptr;
  if (auto st =
          ToStatus(ucp_worker_create(context.handle(), &params, &handle), "ucp_worker_create");
      !st.ok()) {
    return st;
  }
  int fd = -1;
  if (auto st = ToStatus(ucp_worker_get_efd(handle, &fd), "ucp_worker_get_efd"); !st.ok()) {
    ucp_worker_destroy(handle);
    return st;
  }
  return std::unique_ptr<Worker>(new Worker(context, handle, fd));
}

Worker::~Worker() {
  // Let closes and sends already handed to UCX finish, for a bounded time.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!tracked_.empty() && std::chrono::steady_clock::now() < deadline) {
    Progress();
  }
  deferred_.clear();  // releases the rendezvous data nobody took
  running_.clear();
  ucp_worker_destroy(handle_);
}

bool Worker::Progress() {
  bool any = ucp_worker_progress(handle_) != 0;
  FreeCompletedRequests();
  any = RunDeferred() || any;
  return any;
}

bool Worker::RunDeferred() {
  // Nested (a handler progressed the worker): what arrived meanwhile runs
  // after the batch in hand, in order, from the outer call.
  if (running_deferred_) return false;
  running_deferred_ = true;
  bool any = false;
  while (!deferred_.empty()) {
    running_.swap(deferred_);
    for (Deferred& next : running_) {
      if (auto* arrival = std::get_if<Arrival>(&next)) {
        auto it = am_handlers_.find(arrival->id);
        if (it != am_handlers_.end()) it->second.handler(arrival->message);
      } else {
        std::get<absl::AnyInvocable<void()>>(next)();
      }
    }
    running_.clear();  // releases the rendezvous data nobody took
    any = true;
  }
  running_deferred_ = false;
  return any;
}

void Worker::ForgetEndpoint(EndpointId id) {
  if (id == EndpointId::kNone) return;
  // The batch running now included: its entries not yet handled are read
  // after this returns.
  for (auto* queue : {&running_, &deferred_}) {
    for (Deferred& next : *queue) {
      if (auto* arrival = std::get_if<Arrival>(&next); arrival && arrival->message.from == id) {
        arrival->message.from = EndpointId::kNone;
      }
    }
  }
}

size_t Worker::arrivals_waiting() const {
  size_t n = 0;
  for (const Deferred& next : deferred_) n += std::holds_alternative<Arrival>(next);
  return n;
}

absl::StatusOr<bool> Worker::Arm() {
  if (!deferred_.empty()) return false;
  const ucs_status_t status = ucp_worker_arm(handle_);
  if (status == UCS_ERR_BUSY) return false;
  if (auto st = ToStatus(status, "ucp_worker_arm"); !st.ok()) return st;
  return true;
}

absl::Status Worker::SetAmHandler(uint16_t id, AmHandler handler) {
  AmRegistration& registration = am_handlers_[id];
  registration = {this, id, std::move(handler)};
  ucp_am_handler_param_t params{};
  params.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                      UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
  params.id = id;
  params.cb = &Worker::OnAm;
  params.arg = &registration;
  params.flags = UCP_AM_FLAG_WHOLE_MSG;
  return ToStatus(ucp_worker_set_am_recv_handler(handle_, &params),
                  "ucp_worker_set_am_recv_handler");
}

absl::StatusOr<std::vector<uint8_t>> Worker::Address() const {
  ucp_address_t* address = nullptr;
  size_t length = 0;
  if (auto st =
          ToStatus(ucp_worker_get_address(handle_, &address, &length), "ucp_worker_get_address");
      !st.ok()) {
    return st;
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(address);
  std::vector<uint8_t> out(bytes, bytes + length);
  ucp_worker_release_address(handle_, address);
  return out;
}

void Worker::RemoveAmHandler(uint16_t id) {
  if (am_handlers_.count(id) == 0) return;
  ucp_am_handler_param_t params{};
  params.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB;
  params.id = id;
  params.cb = nullptr;
  (void)ucp_worker_set_am_recv_handler(handle_, &params);
  am_handlers_.erase(id);
}

ucs_status_t Worker::OnAm(void* arg, const void* header, size_t header_length, void* data,
                          size_t length, const ucp_am_recv_param_t* param) {
  auto* registration = static_cast<AmRegistration*>(arg);
  Worker* worker = registration->worker;
  // Built where it waits for its handler: its inline bytes are copied once.
  AmMessage& message = std::get<Arrival>(worker->deferred_.emplace_back(std::in_place_type<Arrival>,
                                                                        registration->id))
                           .message;
  if (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) message.from = IdOf(param->reply_ep);
  const auto* h = static_cast<const uint8_t*>(header);
  message.header.assign(h, header_length);
  if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
    // The handler decides where the bytes go; UCX keeps the descriptor.
    message.pending.reset(new PendingData(*worker, data, length));
    return UCS_INPROGRESS;
  }
  const auto* d = static_cast<const uint8_t*>(data);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_DATA) != 0 && length > AmData::kInline) {
    message.data.Hold(worker->handle_, d, length);  // released when the message is done with
    return UCS_INPROGRESS;
  }
  message.data.assign(d, length);
  return UCS_OK;
}

void Worker::ReceiveData(std::unique_ptr<PendingData> data, void* into,
                         std::function<void(const absl::Status&)> done, MemoryKind memory) {
  void* descriptor = std::exchange(data->descriptor_, nullptr);
  Request request("ucp_am_recv_data_nbx", std::move(done));
  ucp_request_param_t params{};
  Request::PrepareReceiveAm(params);
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMORY_TYPE;
  params.memory_type = memory == MemoryKind::kCuda ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
  const ucs_status_ptr_t result =
      ucp_am_recv_data_nbx(data->worker_.handle_, descriptor, into, data->length(), &params);
  Request::Submit(result, std::move(request));
}

void Worker::TrackRequest(ucs_status_ptr_t request) {
  if (request != nullptr && !UCS_PTR_IS_ERR(request)) tracked_.push_back(request);
}

void Worker::FreeCompletedRequests() {
  for (size_t i = 0; i < tracked_.size();) {
    if (ucp_request_check_status(tracked_[i]) != UCS_INPROGRESS) {
      ucp_request_free(tracked_[i]);
      tracked_[i] = tracked_.back();
      tracked_.pop_back();
    } else {
      ++i;
    }
  }
}

}  // namespace axon::ucx
