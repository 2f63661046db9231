// ucx::Context owns one ucp_context_h. One Loop creates, uses and destroys its
// own on its thread; several Loops share one made with shared_by_threads,
// which outlives their workers (Loop::StartOn).
#pragma once

#include <ucp/api/ucp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace axon::ucx {

struct ContextOptions {
  // UCX_TLS for this context; empty: UCX's own default (all transports).
  std::string transports;
  // Workers on several threads share it (several ucx::Loops), or memory is
  // registered and released on other threads than the workers' (axond:
  // regions registered for RMA are released by whichever thread lets go of
  // them last): UCX then guards what they share, such as the registration
  // cache.
  bool shared_by_threads = false;
};

// What this UCX context can do, read once at creation.
struct ContextInfo {
  std::string version;                    // library version, "1.22.0"
  std::vector<std::string> transports;    // "tl/device", e.g. "tcp/lo"
  std::vector<std::string> memory_types;  // "host", "cuda", ...
  bool cuda_memory = false;               // UCX can send from/receive into CUDA memory
};

class Context {
 public:
  static absl::StatusOr<std::unique_ptr<Context>> Create(const ContextOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  ucp_context_h handle() const { return handle_; }
  const ContextInfo& info() const { return info_; }

 private:
  explicit Context(ucp_context_h handle) : handle_(handle) {}
  absl::Status QueryInfo();

  ucp_context_h handle_;
  ContextInfo info_;
};

}  // namespace axon::ucx
