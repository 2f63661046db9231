// axon-bench's report: gpu-bench's JSON becomes rows (memory "cuda", the
// baseline gpu-bench names, round trips halved into one-way latency), and the
// table, JSON and plot carry those rows with their own baselines.
#include <gtest/gtest.h>

#include <string>

#include "bench/axon_bench/gpu_rows.h"
#include "bench/axon_bench/report.h"

namespace axon::bench {
namespace {

// The shape gpu-bench writes (--json), cut down from an H100 run.
constexpr char kGpuBenchJson[] = R"json({"rows": [
  {"where": "local", "size": 1048576, "axon_gbps": 10.713, "base_gbps": 154.230, "ratio": 0.069,
   "baseline": "cudaMemcpy D2D"},
  {"where": "remote", "size": 1073741824, "axon_gbps": 6.210, "base_gbps": 6.685, "ratio": 0.929,
   "baseline": "min(pinned D2H 55.1, H2D 55.2, posix,sysv wire 6.7)"
}],
 "round_trips": [{"where": "remote", "size": 64, "round_trip_us": {"p50": 355.022, "min": 344.476}}],
 "idle_stream_sync_us": 0.303, "runs": 3, "iterations": 10, "window": 2
})json";

TEST(BenchReport, GpuBenchJsonBecomesCudaRows) {
  auto rows = ParseGpuBenchJson(kGpuBenchJson);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  const Row& local = (*rows)[0];
  EXPECT_EQ(local.placement, "local");
  EXPECT_EQ(local.memory, "cuda");
  EXPECT_EQ(local.size, 1048576u);
  EXPECT_DOUBLE_EQ(local.gbps, 10.713);
  EXPECT_DOUBLE_EQ(local.base_gbps, 154.230);
  EXPECT_EQ(local.baseline_name, "cudaMemcpy D2D");
  EXPECT_EQ((*rows)[1].size, size_t{1} << 30);
  const Row& rt = (*rows)[2];
  EXPECT_EQ(rt.placement, "remote");
  EXPECT_EQ(rt.size, 64u);
  EXPECT_DOUBLE_EQ(rt.lat_p50_us, 355.022 / 2);
  EXPECT_DOUBLE_EQ(rt.lat_min_us, 344.476 / 2);
  EXPECT_EQ(rt.gbps, 0);
}

TEST(BenchReport, BadGpuBenchJsonIsAnError) {
  EXPECT_FALSE(ParseGpuBenchJson("not json").ok());
  EXPECT_FALSE(ParseGpuBenchJson(R"({"rows": []})").ok());
}

TEST(BenchReport, GpuRowsKeepTheirBaselinesInTheTableJsonAndPlot) {
  bench::Run run{.machine = "m", .ucx_version = "1.22.0", .command = "axon-bench"};
  run.rows.push_back(Row{.placement = "remote",
                         .size = 64,
                         .baseline_tls = "posix,sysv",
                         .lat_p50_us = 3,
                         .base_lat_us = 0.3});
  auto gpu = ParseGpuBenchJson(kGpuBenchJson);
  ASSERT_TRUE(gpu.ok());
  run.rows.insert(run.rows.end(), gpu->begin(), gpu->end());
  const std::string table = Table(run);
  EXPECT_NE(table.find("ucx_perftest posix,sysv"), std::string::npos) << table;
  EXPECT_NE(table.find("cudaMemcpy D2D"), std::string::npos) << table;
  EXPECT_NE(table.find("0.07"), std::string::npos) << table;  // 10.713 / 154.230
  const std::string json = Json(run);
  EXPECT_NE(json.find(R"("tool": "ucx_perftest", "tls": "posix,sysv")"), std::string::npos);
  EXPECT_NE(json.find(R"("memory": "cuda")"), std::string::npos);
  EXPECT_NE(json.find(R"("tool": "cudaMemcpy D2D")"), std::string::npos) << json;
  // Host and GPU rows of one placement are separate curves.
  const std::string svg = Svg(run);
  EXPECT_NE(svg.find(">remote axon<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">remote cuda axon<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">local cuda baseline<"), std::string::npos) << svg;
}

}  // namespace
}  // namespace axon::bench
