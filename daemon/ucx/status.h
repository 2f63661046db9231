// ucs_status_t -> absl::Status, for the UCX wrapper layer.
#pragma once

#include <ucs/type/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace axon::ucx {

// `what` names the UCX call that failed, e.g. "ucp_init".
absl::Status ToStatus(ucs_status_t status, absl::string_view what);

}  // namespace axon::ucx
