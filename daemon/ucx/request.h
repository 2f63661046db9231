// ucx::Request is one UCX operation in flight (a send, a receive, a close):
// it owns what the operation needs until UCX is done with it (the buffers,
// the completion callback) and runs the callback exactly once, whether UCX
// completes the operation at once, fails it at once, or completes it later.
#pragma once

#include <ucp/api/ucp.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace axon::ucx {

class Request {
 public:
  using Done = std::function<void(const absl::Status& status)>;

  // `what` (a literal) names the operation in error messages, e.g.
  // "ucp_am_send_nbx".
  Request(const char* what, Done done) : what_(what), done_(std::move(done)) {}

  // The active-message header UCX reads while the request is in flight.
  std::vector<uint8_t>& header() { return header_; }

  // Keeps `object` alive while the request is in flight (memory UCX reads).
  void Keep(std::shared_ptr<const void> object) { keep_ = std::move(object); }

  // Points `params`' callback and user data at a request; set the operation's
  // own fields (flags, ...) besides, then pass the *_nbx result to Submit.
  static void PrepareSend(ucp_request_param_t& params, Request* request);
  static void PrepareReceiveAm(ucp_request_param_t& params, Request* request);
  // Takes the result of a *_nbx call made with PrepareX(params, request.get()).
  static void Submit(ucs_status_ptr_t result, std::unique_ptr<Request> request);

 private:
  static void OnSend(void* handle, ucs_status_t status, void* user_data);
  static void OnReceiveAm(void* handle, ucs_status_t status, size_t length, void* user_data);
  static void Complete(void* handle, ucs_status_t status, void* user_data);

  const char* what_;
  Done done_;
  std::vector<uint8_t> header_;
  std::shared_ptr<const void> keep_;
};

}  // namespace axon::ucx
