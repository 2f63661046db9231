#include "daemon/ucx/endpoint.h"

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "daemon/ucx/request.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {
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

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::ConnectToWorker(
    Worker& worker, absl::Span<const uint8_t> address, ErrorHandler on_error) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS;
  params.address = reinterpret_cast<const ucp_address_t*>(address.data());
  return Create(worker, params, std::move(on_error));
}

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Accept(Worker& worker,
                                                           ConnectionRequest request,
                                                           ErrorHandler on_error) {
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
  params.conn_request = request.handle_;
  return Create(worker, params, std::move(on_error));
}

Endpoint::~Endpoint() {
  *alive_ = false;
  if (handle_ == nullptr) return;
  worker_.ForgetEndpoint(id());
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

void Endpoint::SendAm(uint16_t id, absl::Span<const uint8_t> header, std::vector<uint8_t> payload,
                      SendDone done) {
  auto owned = std::make_shared<std::vector<uint8_t>>(std::move(payload));
  const absl::Span<const uint8_t> bytes(*owned);
  SendAmFrom(id, header, bytes, std::move(owned), AmProtocol::kAuto, std::move(done));
}

void Endpoint::SendAmFrom(uint16_t id, absl::Span<const uint8_t> header,
                          absl::Span<const uint8_t> payload, std::shared_ptr<const void> keepalive,
                          AmProtocol protocol, SendDone done, MemoryKind memory) {
  if (failed_) {
    if (done) done(absl::UnavailableError("connection is broken"));
    return;
  }
  Request request("ucp_am_send_nbx", std::move(done));
  request.Keep(std::move(keepalive));
  Submit(id, header, std::move(request), payload.data(), payload.size(), ucp_dt_make_contig(1),
         protocol, memory);
}

void Endpoint::SendAmGather(uint16_t id, absl::Span<const uint8_t> header, Parts&& parts,
                            Keepalives&& keep, AmProtocol protocol, SendDone done,
                            MemoryKind memory) {
  if (failed_) {
    if (done) done(absl::UnavailableError("connection is broken"));
    return;
  }
  Gather::Ptr gather = Gather::Take();
  for (const auto& p : parts) {
    gather->iov.push_back({const_cast<uint8_t*>(p.data()), p.size()});
  }
  gather->keep = std::move(keep);
  const ucp_dt_iov_t* iov = gather->iov.data();
  const size_t count = gather->iov.size();
  Request request("ucp_am_send_nbx", std::move(done));
  request.Keep(std::move(gather));
  Submit(id, header, std::move(request), iov, count, ucp_dt_make_iov(), protocol, memory);
}

void Endpoint::Submit(uint16_t id, absl::Span<const uint8_t> header, Request request,
                      const void* buffer, size_t count, ucp_datatype_t datatype,
                      AmProtocol protocol, MemoryKind memory) {
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_DATATYPE;
  // UCX copies the header only when the send stays in flight (from its own
  // pool), so callers encode headers into buffers they reuse: no allocation
  // per message for them.
  params.flags = UCP_AM_SEND_FLAG_REPLY | UCP_AM_SEND_FLAG_COPY_HEADER;
  params.datatype = datatype;
  if (protocol == AmProtocol::kEager) params.flags |= UCP_AM_SEND_FLAG_EAGER;
  if (protocol == AmProtocol::kRendezvous) params.flags |= UCP_AM_SEND_FLAG_RNDV;
  // Always said: UCX's memory-type cache misjudges pinned host memory
  // (cudaHostRegister) and memory opened from IPC handles.
  params.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMORY_TYPE;
  params.memory_type = memory == MemoryKind::kCuda ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
  Request::PrepareSend(params);
  // Sent before the request moves (an argument's move may come first).
  const ucs_status_ptr_t result =
      ucp_am_send_nbx(handle_, id, header.data(), header.size(), buffer, count, &params);
  Request::Submit(result, std::move(request));
}

void Endpoint::Put(const void* from, size_t length, uint64_t address, const RemoteKey& key,
                   SendDone done) {
  Rma(true, const_cast<void*>(from), length, address, key, std::move(done));
}

void Endpoint::Get(void* into, size_t length, uint64_t address, const RemoteKey& key,
                   SendDone done) {
  Rma(false, into, length, address, key, std::move(done));
}

void Endpoint::Rma(bool put, void* local, size_t length, uint64_t address, const RemoteKey& key,
                   SendDone done) {
  if (failed_) {
    if (done) done(absl::UnavailableError("connection is broken"));
    return;
  }
  if (key.endpoint() != handle_) {
    // Another connection's key would name memory through the wrong
    // transport state: refused rather than left to UCX.
    if (done) done(absl::FailedPreconditionError("a remote key unpacked on another connection"));
    return;
  }
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_MEMORY_TYPE;
  params.memory_type = UCS_MEMORY_TYPE_HOST;
  Request::PrepareSend(params);
  Request request(put ? "ucp_put_nbx" : "ucp_get_nbx", std::move(done));
  const ucs_status_ptr_t result =
      put ? ucp_put_nbx(handle_, local, length, address, key.handle(), &params)
          : ucp_get_nbx(handle_, local, length, address, key.handle(), &params);
  Request::Submit(result, std::move(request));
}

void Endpoint::Flush(SendDone done) {
  if (failed_) {
    if (done) done(absl::UnavailableError("connection is broken"));
    return;
  }
  ucp_request_param_t params{};
  Request::PrepareSend(params);
  Request request("ucp_ep_flush_nbx", std::move(done));
  const ucs_status_ptr_t result = ucp_ep_flush_nbx(handle_, &params);
  Request::Submit(result, std::move(request));
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
