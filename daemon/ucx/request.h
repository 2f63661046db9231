// ucx::Request is one UCX operation in flight (a send, a receive, a close):
// it owns what the operation needs until UCX is done with it (the buffers,
// the completion callback) and runs the callback exactly once, whether UCX
// completes the operation at once, fails it at once, or completes it later.
#pragma once

#include <ucp/api/ucp.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace axon::ucx {

class Request {
 public:
  using Done = std::function<void(const absl::Status& status)>;

  // `what` names the operation in error messages, e.g. "ucp_am_send_nbx".
  Request(std::string what, Done done) : what_(std::move(what)), done_(std::move(done)) {}
  virtual ~Request() = default;

  // Buffers UCX reads from or writes into while the request is in flight.
  // References stay valid as more buffers are added (a deque).
  std::vector<uint8_t>& buffer(size_t i) {
    if (buffers_.size() <= i) buffers_.resize(i + 1);
    return buffers_[i];
  }

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

  std::string what_;
  Done done_;
  std::deque<std::vector<uint8_t>> buffers_;
  std::shared_ptr<const void> keep_;
};

}  // namespace axon::ucx
