// Logging for axon programs: spdlog, one line per event, to stderr (which
// systemd's journal captures). Levels: trace, debug, info, warn, error,
// critical, off.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

// Lets spdlog/fmt print absl::string_view (Status::message(), ...), which this
// abseil build does not alias to std::string_view.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view text, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text.data(), text.size()),
                                                    ctx);
  }
};

namespace axon {

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view name);
// The name ParseLogLevel accepts for `level`.
absl::string_view LogLevelName(spdlog::level::level_enum level);

// Sets up the default logger for program `name`. Under systemd (JOURNAL_STREAM
// set) the timestamp is left to the journal.
void InitLogging(absl::string_view name, spdlog::level::level_enum level);

}  // namespace axon
