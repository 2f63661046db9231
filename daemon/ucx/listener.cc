#include "daemon/ucx/listener.h"

#include "absl/strings/str_cat.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {

absl::StatusOr<std::unique_ptr<Listener>> Listener::Create(Worker& worker,
                                                           const SocketAddress& address,
                                                           ConnectionHandler on_connection) {
  std::unique_ptr<Listener> listener(new Listener(worker, std::move(on_connection)));
  ucp_listener_params_t params{};
  params.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
  params.sockaddr.addr = address.get();
  params.sockaddr.addrlen = address.length;
  params.conn_handler.cb = &Listener::OnConnection;
  params.conn_handler.arg = listener.get();
  if (auto st = ToStatus(ucp_listener_create(worker.handle(), &params, &listener->handle_),
                         absl::StrCat("listen on ", address.ToString()));
      !st.ok()) {
    listener->handle_ = nullptr;
    return st;
  }
  ucp_listener_attr_t attr{};
  attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
  listener->address_ = address;
  if (ucp_listener_query(listener->handle_, &attr) == UCS_OK) {
    listener->address_ = SocketAddressFrom(reinterpret_cast<const sockaddr*>(&attr.sockaddr));
  }
  return listener;
}

Listener::~Listener() {
  *alive_ = false;
  if (handle_ != nullptr) ucp_listener_destroy(handle_);
}

void Listener::OnConnection(ucp_conn_request_h request, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  listener->worker_.Defer([listener, alive = listener->alive_, request] {
    if (*alive) listener->on_connection_(ConnectionRequest(request));
  });
}

}  // namespace axon::ucx
