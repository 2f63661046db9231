// Starting helper programs (axond for LocalCluster, ucx_perftest for the
// benchmarks) with their output in files.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace axon::tools {

// Starts args[0] with `args`, this process's environment plus `extra_env`
// ("NAME=value", later ones win), stdout into `out_path` and stderr into
// `err_path` (both truncated; the same path puts both in one file). The
// child's pid.
absl::StatusOr<pid_t> SpawnWithOutput(const std::vector<std::string>& args,
                                      const std::vector<std::string>& extra_env,
                                      const std::string& out_path, const std::string& err_path);

}  // namespace axon::tools
