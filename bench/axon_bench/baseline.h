// The raw baseline of axon-bench's host rows, and of gpu-bench's direct rows:
// ucx_perftest from the same UCX install, on the same transports, at the same
// size, in the same run. It runs as two processes on loopback (a server and a
// client), like the daemons.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace axon::bench {

struct PerftestResult {
  double latency_us = 0;      // ucp_am_lat: one-way, 50th percentile
  double messages_per_s = 0;  // ucp_am_bw
  double gbytes_per_s = 0;    // ucp_am_bw, 1e9 bytes
};

class Perftest {
 public:
  // `binary`: the ucx_perftest to run; `library_path`: added to
  // LD_LIBRARY_PATH (the UCX it belongs to).
  Perftest(std::string binary, std::string library_path)
      : binary_(std::move(binary)), library_path_(std::move(library_path)) {}
  bool available() const { return !binary_.empty(); }
  const std::string& binary() const { return binary_; }

  // `test`: "ucp_am_lat" or "ucp_am_bw"; `tls`: the UCX_TLS to use;
  // `memory`: where both sides' buffers live, "host" or "cuda" (-m);
  // `cuda_devices`: CUDA_VISIBLE_DEVICES for both processes ("" leaves it
  // alone). ucx_perftest puts the receiving server on the first visible GPU
  // and the sending client on the second, or on the first if there is one:
  // "0" is GPU 0 to GPU 0, "1,0" is GPU 0 to GPU 1. (Its -a selects
  // device-initiated tests, not the GPUs of these.)
  absl::StatusOr<PerftestResult> Run(const std::string& test, const std::string& tls, size_t size,
                                     int iterations, int window, const std::string& memory = "host",
                                     const std::string& cuda_devices = "");

 private:
  std::string binary_, library_path_;
  int next_port_ = 0;
};

// The UCX transports (UCX_TLS) that the daemon at `socket` uses to its peers,
// from `axonctl peers`, without the CUDA ones: the host baseline's transports.
// "tcp" when it reports none.
std::string PeerTransports(const std::string& socket);

}  // namespace axon::bench
