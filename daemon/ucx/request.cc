#include "daemon/ucx/request.h"

#include "daemon/ucx/status.h"

namespace axon::ucx {

void Request::PrepareSend(ucp_request_param_t& params, Request* request) {
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  params.cb.send = &Request::OnSend;
  params.user_data = request;
}

void Request::PrepareReceiveAm(ucp_request_param_t& params, Request* request) {
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  params.cb.recv_am = &Request::OnReceiveAm;
  params.user_data = request;
}

void Request::Submit(ucs_status_ptr_t result, std::unique_ptr<Request> request) {
  if (result == nullptr) {
    Complete(nullptr, UCS_OK, request.release());
  } else if (UCS_PTR_IS_ERR(result)) {
    Complete(nullptr, UCS_PTR_STATUS(result), request.release());
  } else {
    request.release();  // the callback owns it now
  }
}

void Request::OnSend(void* handle, ucs_status_t status, void* user_data) {
  Complete(handle, status, user_data);
}

void Request::OnReceiveAm(void* handle, ucs_status_t status, size_t, void* user_data) {
  Complete(handle, status, user_data);
}

void Request::Complete(void* handle, ucs_status_t status, void* user_data) {
  std::unique_ptr<Request> request(static_cast<Request*>(user_data));
  if (handle != nullptr) ucp_request_free(handle);
  if (request->done_) request->done_(ToStatus(status, request->what_));
}

}  // namespace axon::ucx
