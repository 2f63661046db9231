// ucx::Request is one UCX operation in flight (a send, a receive of
// rendezvous data): it owns what the operation needs until UCX is done with
// it (the memory UCX reads, the completion callback; UCX copies the
// active-message header itself) and runs the callback exactly once, whether UCX completes the
// operation at once, fails it at once, or completes it later.
//
// No allocation of its own: an operation that completes at once (most small
// sends) never leaves the caller's stack, and one that UCX keeps lives in the
// bytes every UCX request reserves for it (ucp_params_t::request_size, set to
// Request::kReservedBytes by Context), until its callback.
#pragma once

#include <ucp/api/ucp.h>

#include <functional>
#include <memory>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"

namespace axon::ucx {

// What keeps a send's memory valid until UCX is done reading it: one owner
// per part at most, inline up to a call's usual count.
using Keepalives = absl::InlinedVector<std::shared_ptr<const void>, 10>;

// A gathered send's IOV list and keepalives. UCX reads the list until the
// send completes, so it lives apart from the Request (which moves into
// UCX's request memory). Recycled per thread: once warm, a gathered send
// allocates nothing.
struct Gather {
  absl::InlinedVector<ucp_dt_iov_t, 10> iov;
  Keepalives keep;

  struct Recycle {
    void operator()(Gather* gather) const;
  };
  using Ptr = std::unique_ptr<Gather, Recycle>;
  // An empty Gather, recycled when there is one.
  static Ptr Take();
};

class Request {
 public:
  using Done = std::function<void(const absl::Status& status)>;

  // `what` (a literal) names the operation in error messages, e.g.
  // "ucp_am_send_nbx".
  Request(const char* what, Done done) : what_(what), done_(std::move(done)) {}
  Request(Request&&) = default;

  // Keeps `object` alive while the request is in flight (memory UCX reads).
  void Keep(std::shared_ptr<const void> object) { keep_ = std::move(object); }
  void Keep(Gather::Ptr gather) { gather_ = std::move(gather); }

  // Points `params`' callback at Request's; set the operation's own fields
  // (flags, ...) besides, then pass the *_nbx result to Submit.
  static void PrepareSend(ucp_request_param_t& params);
  static void PrepareReceiveAm(ucp_request_param_t& params);
  // Takes the result of a *_nbx call made with PrepareX(params) and the
  // request's state: completes it at once, or moves it into the UCX request
  // until UCX calls back.
  static void Submit(ucs_status_ptr_t result, Request request);

  // What each UCX request must reserve (see the top of this file).
  static const size_t kReservedBytes;

 private:
  static void OnSend(void* handle, ucs_status_t status, void* user_data);
  static void OnReceiveAm(void* handle, ucs_status_t status, size_t length, void* user_data);
  // Runs the callback of `request`, which is done.
  static void Finish(const Request& request, ucs_status_t status);

  const char* what_;
  Done done_;
  std::shared_ptr<const void> keep_;
  Gather::Ptr gather_;
};

}  // namespace axon::ucx
