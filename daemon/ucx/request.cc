#include "daemon/ucx/request.h"

#include <new>
#include <utility>
#include <vector>

#include "daemon/ucx/status.h"

namespace axon::ucx {

const size_t Request::kReservedBytes = sizeof(Request);

namespace {
// Enough for every gathered send in flight in a busy daemon; beyond it they
// are freed (a burst does not pin memory forever).
constexpr size_t kKeptGathers = 4096;
thread_local std::vector<std::unique_ptr<Gather>> spare_gathers;
}  // namespace

void Gather::Recycle::operator()(Gather* gather) const {
  std::unique_ptr<Gather> owned(gather);
  owned->iov.clear();
  owned->keep.clear();  // releases the memory now, not when reused
  if (spare_gathers.size() < kKeptGathers) {
    if (spare_gathers.capacity() == 0) spare_gathers.reserve(kKeptGathers);
    spare_gathers.push_back(std::move(owned));
  }
}

Gather::Ptr Gather::Take() {
  if (spare_gathers.empty()) return Ptr(new Gather);
  Ptr gather(spare_gathers.back().release());
  spare_gathers.pop_back();
  return gather;
}

void Request::PrepareSend(ucp_request_param_t& params) {
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_CALLBACK;
  params.cb.send = &Request::OnSend;
}

void Request::PrepareReceiveAm(ucp_request_param_t& params) {
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_CALLBACK;
  params.cb.recv_am = &Request::OnReceiveAm;
}

void Request::Submit(ucs_status_ptr_t result, Request request) {
  if (result == nullptr) {
    Finish(request, UCS_OK);
  } else if (UCS_PTR_IS_ERR(result)) {
    Finish(request, UCS_PTR_STATUS(result));
  } else {
    // UCX calls back only from a later progress, so this is in place first.
    // UCX's requests come from a cache-line-aligned pool and the handle
    // follows its own struct of pointers and counters: 8-byte aligned
    // (UBSan's alignment check would catch it otherwise).
    new (result) Request(std::move(request));
  }
}

void Request::OnSend(void* handle, ucs_status_t status, void*) {
  auto* in_place = static_cast<Request*>(handle);
  Request request = std::move(*in_place);
  in_place->~Request();
  ucp_request_free(handle);
  Finish(request, status);
}

void Request::OnReceiveAm(void* handle, ucs_status_t status, size_t, void*) {
  OnSend(handle, status, nullptr);
}

void Request::Finish(const Request& request, ucs_status_t status) {
  if (request.done_) request.done_(ToStatus(status, request.what_));
}

}  // namespace axon::ucx
