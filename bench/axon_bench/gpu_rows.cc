#include "bench/axon_bench/gpu_rows.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/tools/spawn.h"
#include "common/errno_status.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace axon::bench {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double Number(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? 0 : it->second.number_value();
}

std::string Text(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? std::string() : it->second.string_value();
}

}  // namespace

absl::StatusOr<std::vector<Row>> ParseGpuBenchJson(const std::string& json) {
  google::protobuf::Struct doc;
  if (auto st = google::protobuf::util::JsonStringToMessage(json, &doc); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("gpu-bench JSON: ", st.ToString()));
  }
  std::vector<Row> rows;
  const auto& fields = doc.fields();
  if (auto it = fields.find("rows"); it != fields.end()) {
    for (const auto& v : it->second.list_value().values()) {
      const auto& r = v.struct_value();
      rows.push_back(Row{.placement = Text(r, "where"),
                         .memory = "cuda",
                         .size = static_cast<size_t>(Number(r, "size")),
                         .gbps = Number(r, "axon_gbps"),
                         .base_gbps = Number(r, "base_gbps"),
                         .baseline_name = Text(r, "baseline")});
    }
  }
  if (auto it = fields.find("round_trips"); it != fields.end()) {
    for (const auto& v : it->second.list_value().values()) {
      const auto& r = v.struct_value();
      const auto rt = r.fields().find("round_trip_us");
      if (rt == r.fields().end()) continue;
      rows.push_back(Row{.placement = Text(r, "where"),
                         .memory = "cuda",
                         .size = static_cast<size_t>(Number(r, "size")),
                         .lat_min_us = Number(rt->second.struct_value(), "min") / 2,
                         .lat_p50_us = Number(rt->second.struct_value(), "p50") / 2,
                         .note = "gpu-bench round trip / 2"});
    }
  }
  if (rows.empty()) return absl::InvalidArgumentError("gpu-bench JSON: no rows");
  return rows;
}

absl::StatusOr<std::vector<Row>> GpuRows(const GpuRowsOptions& o, std::string* note) {
  std::string program = o.gpu_bench;
  if (program.empty()) {
    program =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "gpu-bench").string();
  }
  if (::access(program.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("no gpu-bench at ", program, " (it is built only where the CUDA toolkit is)"));
  }
  std::error_code ec;
  std::filesystem::create_directories(o.run_dir, ec);
  const std::string json = o.run_dir + "/gpu-bench.json";
  const std::string log = o.run_dir + "/gpu-bench.log";
  std::filesystem::remove(json, ec);
  std::vector<std::string> args = {program,  "--runs", absl::StrCat(o.runs), "--run-dir", o.run_dir,
                                   "--json", json};
  if (o.quick) args.push_back("--quick");
  for (const auto& [flag, value] :
       {std::pair{"--axond", &o.axond}, std::pair{"--perftest", &o.perftest},
        std::pair{"--ucx-libdir", &o.ucx_libdir}}) {
    if (!value->empty()) args.insert(args.end(), {flag, *value});
  }
  auto pid = tools::SpawnWithOutput(args, {}, log, log);
  if (!pid.ok()) return pid.status();
  int status = 0;
  pid_t waited = -1;
  do {
    waited = ::waitpid(*pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited < 0) return ErrnoStatus(errno, "waitpid(gpu-bench)");
  const std::string output = ReadAll(log);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("gpu-bench failed (see ", log, "): ", output.substr(0, 400)));
  }
  if (!std::filesystem::exists(json)) {
    // gpu-bench exits 0 without a JSON on a machine with no GPU.
    *note = output.find("no CUDA device") != std::string::npos
                ? "no CUDA device"
                : absl::StrCat("gpu-bench wrote no results (see ", log, ")");
    return std::vector<Row>{};
  }
  return ParseGpuBenchJson(ReadAll(json));
}

}  // namespace axon::bench
