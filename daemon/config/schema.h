// The config schema: every key axond accepts, how its YAML value is parsed and
// validated, and where it lands in Config. The loader walks YAML; this file
// knows what the keys mean.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "daemon/config/config.h"

namespace axon::daemon {

struct ConfigField {
  std::string section;
  std::string key;
  // Parses `value` into `config`. Errors say what was expected and what was
  // found; the loader adds the key and the location.
  std::function<absl::Status(const YAML::Node& value, Config& config)> apply;

  std::string FullKey() const { return section + "." + key; }
};

const std::vector<ConfigField>& ConfigSchema();

// An empty path (use the default) or an absolute one short enough for a Unix
// socket.
absl::Status CheckSocketPath(const std::string& path);

}  // namespace axon::daemon
