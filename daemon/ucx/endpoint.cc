#include "daemon/ucx/endpoint.h"

#include "absl/strings/str_cat.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {
namespace {

// One active message in flight: owns its buffers until UCX completes it.
struct SendOp {
  std::vector<uint8_t> header;
  std::vector<uint8_t> payload;
  Endpoint::SendDone done;
};

void OnSendComplete(void* request, ucs_status_t status, void* user_data) {
  std::unique_ptr<SendOp> op(static_cast<SendOp*>(user_data));
  if (op->done) op->done(ToStatus(status, "ucp_am_send_nbx"));
  ucp_request_free(request);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Create(Worker& worker, ucp_ep_params_t& params,
                                                           ErrorHandler on_error) {
  std::unique_ptr<Endpoint> ep(new Endpoint(worker, std::move(on_error)));
  params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = &Endpoint::OnError;
  params.err_handler.arg = ep.get();
  if (auto st = ToStatus(ucp_ep_create(worker.handle(), &params, &ep->handle_), "ucp_ep_create");
      !st.ok()) {
    ep->handle_ = nullptr;
    return st;
  }
  return ep;
}

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Connect(Worker& worker,
                                                            const SocketAddress& address,
                                                            ErrorHandler on_error) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
  params.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
  params.sockaddr.addr = address.get();
  params.sockaddr.addrlen = address.length;
  return Create(worker, params, std::move(on_error));
}

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Accept(Worker& worker,
                                                           ucp_conn_request_h request,
                                                           ErrorHandler on_error) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
  params.conn_request = request;
  return Create(worker, params, std::move(on_error));
}

Endpoint::~Endpoint() {
  *alive_ = false;
  if (handle_ == nullptr) return;
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  params.flags = UCP_EP_CLOSE_FLAG_FORCE;
  worker_.TrackRequest(ucp_ep_close_nbx(handle_, &params));
}

void Endpoint::OnError(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* ep = static_cast<Endpoint*>(arg);
  if (ep->failed_) return;
  ep->failed_ = true;
  ep->worker_.Defer([ep, alive = ep->alive_, status] {
    if (*alive && ep->on_error_) ep->on_error_(ToStatus(status, "connection lost"));
  });
}

void Endpoint::SendAm(uint16_t id, std::vector<uint8_t> header, std::vector<uint8_t> payload,
                      SendDone done) {
  auto op = std::make_unique<SendOp>(SendOp{std::move(header), std::move(payload), std::move(done)});
  if (failed_) {
    if (op->done) op->done(absl::UnavailableError("connection is broken"));
    return;
  }
  ucp_request_param_t params{};
  params.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  params.cb.send = &OnSendComplete;
  params.user_data = op.get();
  params.flags = UCP_AM_SEND_FLAG_REPLY;
  ucs_status_ptr_t request =
      ucp_am_send_nbx(handle_, id, op->header.data(), op->header.size(), op->payload.data(),
                      op->payload.size(), &params);
  if (request == nullptr) {
    if (op->done) op->done(absl::OkStatus());
  } else if (UCS_PTR_IS_ERR(request)) {
    if (op->done) op->done(ToStatus(UCS_PTR_STATUS(request), "ucp_am_send_nbx"));
  } else {
    op.release();  // OnSendComplete owns it now
  }
}

std::vector<std::string> Endpoint::Transports() const {
  std::vector<std::string> out;
#if defined(UCP_API_VERSION) && UCP_API_VERSION >= UCP_VERSION(1, 14)
  ucp_transport_entry_t entries[16];
  ucp_ep_attr_t attr{};
  attr.field_mask = UCP_EP_ATTR_FIELD_TRANSPORTS;
  attr.transports.entries = entries;
  attr.transports.num_entries = 16;
  attr.transports.entry_size = sizeof(ucp_transport_entry_t);
  if (ucp_ep_query(handle_, &attr) == UCS_OK) {
    for (unsigned i = 0; i < attr.transports.num_entries; ++i) {
      out.push_back(absl::StrCat(entries[i].transport_name, "/", entries[i].device_name));
    }
  }
#endif
  return out;
}

}  // namespace axon::ucx
