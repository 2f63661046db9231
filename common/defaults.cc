#include "common/defaults.h"

#include <cstdlib>

namespace axon {

std::string DefaultSocketPath() {
  const char* env = std::getenv(kSocketEnvVar);
  return (env != nullptr && *env != '\0') ? std::string(env) : std::string(kDefaultSocketPath);
}

}  // namespace axon
