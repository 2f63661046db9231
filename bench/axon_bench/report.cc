#include "bench/axon_bench/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace axon::bench {
namespace {

std::string Size(size_t n) {
  if (n >= (1u << 30) && n % (1u << 30) == 0) return absl::StrCat(n >> 30, "G");
  if (n >= (1u << 20) && n % (1u << 20) == 0) return absl::StrCat(n >> 20, "M");
  if (n >= (1u << 10) && n % (1u << 10) == 0) return absl::StrCat(n >> 10, "K");
  return absl::StrCat(n);
}

std::string Num(double v, const char* format) {
  return v > 0 ? absl::StrFormat(format, v) : std::string("-");
}

std::string Ratio(double axon, double base) {
  return axon > 0 && base > 0 ? absl::StrFormat("%.2f", axon / base) : std::string("-");
}

// "a/b" loop busy shares as percentages, "-" where not measured.
std::string Busy(const Row& r) {
  auto one = [](double v) { return v < 0 ? std::string("-") : absl::StrFormat("%.0f%%", 100 * v); };
  if (r.busy_a < 0 && r.busy_b < 0) return "-";
  return r.busy_b < 0 ? one(r.busy_a) : one(r.busy_a) + "/" + one(r.busy_b);
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string BaselineName(const Row& r) {
  if (!r.baseline_name.empty()) return r.baseline_name;
  return r.baseline_tls.empty() ? "-" : "ucx_perftest " + r.baseline_tls;
}

}  // namespace

std::string Table(const Run& run) {
  std::string out = absl::StrFormat(
      "%-7s %-5s %6s %3s | %9s %9s %9s %9s %5s | %11s %11s %5s %9s | %8s %8s %5s | %8s %5s  %s\n",
      "where", "mem", "size", "n", "lat min", "lat p50", "lat p99", "ucx p50", "x", "msg/s",
      "ucx msg/s", "ratio", "busy a/b", "GB/s", "ucx GB/s", "ratio", "memcpy", "x mc", "baseline");
  for (const Row& r : run.rows) {
    absl::StrAppendFormat(
        &out,
        "%-7s %-5s %6s %3d | %9s %9s %9s %9s %5s | %11s %11s %5s %9s | %8s %8s %5s | %8s %5s  "
        "%s%s\n",
        r.placement, r.memory, Size(r.size), r.pairs, Num(r.lat_min_us, "%.2fus"),
        Num(r.lat_p50_us, "%.2fus"), Num(r.lat_p99_us, "%.2fus"), Num(r.base_lat_us, "%.2fus"),
        Ratio(r.lat_p50_us, r.base_lat_us), Num(r.rate, "%.0f"), Num(r.base_rate, "%.0f"),
        Ratio(r.rate, r.base_rate), Busy(r), Num(r.gbps, "%.3f"), Num(r.base_gbps, "%.3f"),
        Ratio(r.gbps, r.base_gbps), Num(r.memcpy_gbps, "%.3f"), Ratio(r.gbps, r.memcpy_gbps),
        BaselineName(r), r.note.empty() ? "" : "  (" + r.note + ")");
  }
  out +=
      "lat: one way (round trip / 2); x: axon p50 / ucx_perftest p50 (lower is better); "
      "ratio: axon / ucx_perftest (higher is better); busy a/b: share of the stream's wall time "
      "the UCX thread of node-a (sender) / node-b (receiver, remote rows) was busy; memcpy: one "
      "thread's memcpy of the same size in this process (GB/s), x mc: axon GB/s / memcpy GB/s\n";
  return out;
}

std::string Json(const Run& run) {
  std::vector<std::string> rows;
  for (const Row& r : run.rows) {
    rows.push_back(absl::StrFormat(
        "    {\"placement\": \"%s\", \"memory\": \"%s\", \"size\": %d, \"pairs\": %d, "
        "\"latency_us\": {\"min\": %.3f, \"p50\": %.3f, \"p99\": %.3f}, \"messages_per_s\": %.1f, "
        "\"gbytes_per_s\": %.4f, \"loop_busy\": {\"a\": %.3f, \"b\": %.3f}, \"baseline\": "
        "{\"tool\": \"%s\", \"tls\": \"%s\", "
        "\"latency_us_p50\": %.3f, \"messages_per_s\": %.1f, \"gbytes_per_s\": %.4f}, "
        "\"memcpy_gbytes_per_s\": %.4f, \"note\": \"%s\"}",
        r.placement, r.memory, r.size, r.pairs, r.lat_min_us, r.lat_p50_us, r.lat_p99_us, r.rate,
        r.gbps, r.busy_a, r.busy_b,
        Escape(r.baseline_name.empty() ? std::string("ucx_perftest") : r.baseline_name),
        Escape(r.baseline_tls), r.base_lat_us, r.base_rate, r.base_gbps, r.memcpy_gbps,
        Escape(r.note)));
  }
  return absl::StrFormat(
      "{\n  \"machine\": \"%s\",\n  \"ucx\": \"%s\",\n  \"command\": \"%s\",\n  \"rows\": [\n%s\n  "
      "]\n}\n",
      Escape(run.machine), Escape(run.ucx_version), Escape(run.command),
      absl::StrJoin(rows, ",\n"));
}

std::string Svg(const Run& run) {
  // Two panels side by side, log-log: latency (us) and bandwidth (GB/s) vs size.
  const double w = 480, h = 340, left = 60, top = 30, pw = 380, ph = 250;
  struct Series {
    std::string name, color;
    bool dashed;
    std::vector<std::pair<double, double>> lat, bw;
  };
  std::map<std::string, Series> series;
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  int next_color = 0;
  for (const Row& r : run.rows) {
    if (r.pairs != 1) continue;
    for (bool base : {false, true}) {
      // GPU rows' baselines differ by row (gpu-bench names the figures):
      // one series per placement.
      const std::string where = r.memory == "host" ? r.placement : r.placement + " " + r.memory;
      const std::string key = where + (!base                     ? " axon"
                                       : r.baseline_name.empty() ? " ucx_perftest " + r.baseline_tls
                                                                 : " baseline");
      auto [it, fresh] = series.try_emplace(key);
      if (fresh) {
        it->second = {key, colors[(base ? next_color - 1 : next_color++) % 8], base, {}, {}};
      }
      const double lat = base ? r.base_lat_us : r.lat_p50_us;
      const double bw = base ? r.base_gbps : r.gbps;
      if (lat > 0) it->second.lat.push_back({static_cast<double>(r.size), lat});
      if (bw > 0) it->second.bw.push_back({static_cast<double>(r.size), bw});
    }
  }
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n",
      static_cast<int>(2 * w), static_cast<int>(h + 20 + 16 * series.size()));
  for (int panel = 0; panel < 2; ++panel) {
    double xmin = 1e30, xmax = 0, ymin = 1e30, ymax = 0;
    for (auto& [k, s] : series) {
      for (auto [x, y] : panel == 0 ? s.lat : s.bw) {
        xmin = std::min(xmin, x), xmax = std::max(xmax, x);
        ymin = std::min(ymin, y), ymax = std::max(ymax, y);
      }
    }
    if (xmax <= 0) continue;
    xmin = std::max(xmin, 1.0);
    const double lx0 = std::log10(xmin), lx1 = std::max(std::log10(xmax), lx0 + 1);
    const double ly0 = std::floor(std::log10(ymin)), ly1 = std::ceil(std::log10(ymax) + 1e-9);
    const double ox = panel * w + left;
    auto X = [&](double x) { return ox + (std::log10(x) - lx0) / (lx1 - lx0) * pw; };
    auto Y = [&](double y) { return top + ph - (std::log10(y) - ly0) / (ly1 - ly0) * ph; };
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
                          "fill=\"none\" stroke=\"#888\"/>\n<text x=\"%.0f\" y=\"18\">%s</text>\n",
                          ox, top, pw, ph, ox,
                          panel == 0 ? "one-way latency (us, p50) vs message size (bytes)"
                                     : "bandwidth (GB/s) vs message size (bytes)");
    for (double d = ly0; d <= ly1; d += 1) {
      absl::StrAppendFormat(
          &svg,
          "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
          "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
          ox, ox + pw, Y(std::pow(10, d)), Y(std::pow(10, d)), ox - 4, Y(std::pow(10, d)) + 4,
          std::pow(10, d));
    }
    for (double d = std::ceil(lx0); d <= lx1; d += 1) {
      absl::StrAppendFormat(&svg,
                            "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">1e%d</text>\n",
                            X(std::pow(10, d)), top + ph + 14, static_cast<int>(d));
    }
    for (auto& [k, s] : series) {
      const auto& points = panel == 0 ? s.lat : s.bw;
      if (points.empty()) continue;
      std::string path;
      for (auto [x, y] : points) absl::StrAppendFormat(&path, "%.1f,%.1f ", X(x), Y(y));
      absl::StrAppendFormat(&svg,
                            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" %s "
                            "points=\"%s\"/>\n",
                            s.color, s.dashed ? "stroke-dasharray=\"5,4\"" : "", path);
    }
  }
  int i = 0;
  for (auto& [k, s] : series) {
    const double y = h + 10 + 16 * i++;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                          "stroke-width=\"2\" %s/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                          left, left + 30, y, y, s.color,
                          s.dashed ? "stroke-dasharray=\"5,4\"" : "", left + 36, y + 4, s.name);
  }
  return svg + "</svg>\n";
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}

}  // namespace axon::bench
