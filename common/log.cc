#include "common/log.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace axon {

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view name) {
  for (int i = spdlog::level::trace; i < spdlog::level::n_levels; ++i) {
    const auto level = static_cast<spdlog::level::level_enum>(i);
    const auto level_name = spdlog::level::to_string_view(level);
    if (absl::string_view(level_name.data(), level_name.size()) == name) return level;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level '", name, "' (expected trace, debug, info, warn, error, critical, off)"));
}

void InitLogging(absl::string_view name, spdlog::level::level_enum level) {
  auto logger = std::make_shared<spdlog::logger>(
      std::string(name), std::make_shared<spdlog::sinks::stderr_sink_mt>());
  const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  logger->set_pattern(journal ? "%l: %v" : "%Y-%m-%dT%H:%M:%S.%e %n[%P] %l: %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace axon
