#include "daemon/ucx/context.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "daemon/ucx/request.h"
#include "daemon/ucx/status.h"

namespace axon::ucx {
namespace {

struct ConfigDeleter {
  void operator()(ucp_config_t* config) const { ucp_config_release(config); }
};

// ucp_context_print_info lists the resources the context really uses (after
// UCX_TLS filtering) as lines like "#  resource 1 : md 1 dev 1 flags -- tcp/lo".
// It is the one place UCX reports them in every version from 1.13 on.
std::vector<std::string> ParseResources(const std::string& text) {
  std::set<std::string> unique;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.find("resource") == absl::string_view::npos) continue;
    const size_t dashes = line.rfind("-- ");
    if (dashes == absl::string_view::npos) continue;
    absl::string_view tl = absl::StripAsciiWhitespace(line.substr(dashes + 3));
    if (!tl.empty()) unique.emplace(tl);
  }
  return {unique.begin(), unique.end()};
}

}  // namespace

absl::StatusOr<std::unique_ptr<Context>> Context::Create(const ContextOptions& options) {
  // A restarted daemon must be able to listen on its port again at once, not
  // after TIME_WAIT runs out (SO_REUSEADDR on the peer listener). The
  // environment still wins, for an operator who wants otherwise.
  ::setenv("UCX_TCP_CM_REUSEADDR", "y", /*overwrite=*/0);
  // Shared memory between two daemons on one host: UCX leaves the shm
  // transports out of endpoints that want peer error handling (ours do)
  // unless told they may use it; they then detect a dead peer by keepalive,
  // which we make 1 s instead of 20 s so that a pull from a dead daemon fails
  // soon. Environment first, as above.
  ::setenv("UCX_POSIX_ERROR_HANDLING", "y", 0);
  ::setenv("UCX_SYSV_ERROR_HANDLING", "y", 0);
  ::setenv("UCX_KEEPALIVE_INTERVAL", "1s", 0);
  // A small message between two daemons on one host is one shared-memory
  // FIFO element when it fits ("short"), else a descriptor the element points
  // to ("copy-in"). UCX's 128-byte element leaves 84 bytes for a sent frame
  // with the reply flag, less than our header and a 64 B payload need; at
  // 512 bytes, frames up to 468 bytes go short, which saves the sender the
  // descriptor and the receiver a second cache line to fetch. The FIFO is 64
  // elements per interface: 32 KiB instead of 8 KiB. Environment first.
  ::setenv("UCX_MM_FIFO_ELEM_SIZE", "512", 0);
  ucp_config_t* raw_config = nullptr;
  if (auto st = ToStatus(ucp_config_read(nullptr, nullptr, &raw_config), "ucp_config_read");
      !st.ok()) {
    return st;
  }
  std::unique_ptr<ucp_config_t, ConfigDeleter> config(raw_config);
  if (!options.transports.empty()) {
    if (auto st = ToStatus(ucp_config_modify(config.get(), "TLS", options.transports.c_str()),
                           "ucp_config_modify(TLS=" + options.transports + ")");
        !st.ok()) {
      return st;
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED |
                      UCP_PARAM_FIELD_NAME | UCP_PARAM_FIELD_REQUEST_SIZE;
  // RMA: registered regions get remote keys, for pulls straight into a
  // destination buffer.
  params.features = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = options.shared_by_threads ? 1 : 0;
  params.name = "axond";
  params.request_size = Request::kReservedBytes;  // a Request lives in each UCX request
  ucp_context_h handle = nullptr;
  if (auto st = ToStatus(ucp_init(&params, config.get(), &handle), "ucp_init"); !st.ok()) {
    return st;
  }
  std::unique_ptr<Context> context(new Context(handle));
  if (auto st = context->QueryInfo(); !st.ok()) return st;
  return context;
}

Context::~Context() { ucp_cleanup(handle_); }

absl::Status Context::QueryInfo() {
  info_.version = ucp_get_version_string();

  ucp_context_attr_t attr{};
  attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
  if (auto st = ToStatus(ucp_context_query(handle_, &attr), "ucp_context_query"); !st.ok()) {
    return st;
  }
  for (int type = 0; type < UCS_MEMORY_TYPE_LAST; ++type) {
    if ((attr.memory_types & (uint64_t{1} << type)) == 0) continue;
    info_.memory_types.emplace_back(ucs_memory_type_names[type]);
  }
  info_.cuda_memory = (attr.memory_types & (uint64_t{1} << UCS_MEMORY_TYPE_CUDA)) != 0;

  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&buffer, &size);
  if (stream == nullptr) return absl::ResourceExhaustedError("open_memstream failed");
  ucp_context_print_info(handle_, stream);
  std::fclose(stream);
  info_.transports = ParseResources(std::string(buffer, size));
  std::free(buffer);
  return absl::OkStatus();
}

}  // namespace axon::ucx
