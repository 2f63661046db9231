#include "daemon/ucx/worker.h"

#include "daemon/ucx/status.h"

namespace axon::ucx {

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(const Context& context) {
  ucp_worker_params_t params{};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucp_worker_h handle = nullptr;
  if (auto st = ToStatus(ucp_worker_create(context.handle(), &params, &handle), "ucp_worker_create");
      !st.ok()) {
    return st;
  }
  int fd = -1;
  if (auto st = ToStatus(ucp_worker_get_efd(handle, &fd), "ucp_worker_get_efd"); !st.ok()) {
    ucp_worker_destroy(handle);
    return st;
  }
  return std::unique_ptr<Worker>(new Worker(handle, fd));
}

Worker::~Worker() { ucp_worker_destroy(handle_); }

bool Worker::Progress() { return ucp_worker_progress(handle_) != 0; }

absl::StatusOr<bool> Worker::Arm() {
  const ucs_status_t status = ucp_worker_arm(handle_);
  if (status == UCS_ERR_BUSY) return false;
  if (auto st = ToStatus(status, "ucp_worker_arm"); !st.ok()) return st;
  return true;
}

}  // namespace axon::ucx
