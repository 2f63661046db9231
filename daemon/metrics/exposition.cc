#include "daemon/metrics/exposition.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace axon::daemon::metrics {
namespace {

[[maybe_unused]] bool ValidName(absl::string_view name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  }
  return true;
}

// HELP text escapes backslash and newline; label values also double quotes.
void AppendEscaped(std::string& out, absl::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string Number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return absl::StrFormat("%.10g", value);
}

}  // namespace

void Exposition::Family(absl::string_view name, Type type, absl::string_view help) {
  assert(ValidName(name));
  family_ = std::string(name);
  absl::StrAppend(&out_, "# HELP ", name, " ");
  AppendEscaped(out_, help, /*quotes=*/false);
  absl::StrAppend(&out_, "\n# TYPE ", name, " ", TypeName(type), "\n");
}

void Exposition::Line(const Labels& labels, absl::string_view suffix, absl::string_view extra_label,
                      absl::string_view extra_value, absl::string_view value) {
  absl::StrAppend(&out_, family_, suffix);
  if (!labels.empty() || !extra_label.empty()) {
    out_ += '{';
    bool first = true;
    auto label = [&](absl::string_view name, absl::string_view text) {
      assert(ValidName(name));
      if (!first) out_ += ',';
      first = false;
      absl::StrAppend(&out_, name, "=\"");
      AppendEscaped(out_, text, /*quotes=*/true);
      out_ += '"';
    };
    for (const auto& [name, text] : labels) label(name, text);
    if (!extra_label.empty()) label(extra_label, extra_value);
    out_ += '}';
  }
  absl::StrAppend(&out_, " ", value, "\n");
}

void Exposition::Sample(const Labels& labels, uint64_t value, absl::string_view suffix) {
  Line(labels, suffix, "", "", absl::StrCat(value));
}

void Exposition::Sample(const Labels& labels, double value, absl::string_view suffix) {
  Line(labels, suffix, "", "", Number(value));
}

void Exposition::Histogram(const Labels& labels, const std::vector<uint64_t>& below_pow2_us,
                           uint64_t count, double sum_micros) {
  for (size_t i = 0; i < below_pow2_us.size(); ++i) {
    // Entry i: below 2^(i + 1) us.
    const double le_seconds = std::ldexp(1.0, static_cast<int>(i) + 1) * 1e-6;
    Line(labels, "_bucket", "le", Number(le_seconds),
         absl::StrCat(std::min(below_pow2_us[i], count)));
  }
  Line(labels, "_bucket", "le", "+Inf", absl::StrCat(count));
  Sample(labels, sum_micros * 1e-6, "_sum");
  Sample(labels, count, "_count");
}

void Exposition::Histogram(const Labels& labels, const LatencyHistogram& histogram) {
  const auto counts = histogram.PowerOfTwoCounts();
  Histogram(labels, std::vector<uint64_t>(counts.begin(), counts.end()), histogram.count(),
            histogram.sum_micros());
}

}  // namespace axon::daemon::metrics
