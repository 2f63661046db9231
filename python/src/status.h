// absl::Status to Python exceptions: a failed status is thrown as
// StatusError, which the module's translator raises as the axon.errors
// class for its code (each also derives from the matching builtin).
#pragma once

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace axon::python {

class StatusError : public std::exception {
 public:
  explicit StatusError(const absl::Status& status)
      : code_(status.code()), message_(status.message()) {}
  absl::StatusCode code() const { return code_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  absl::StatusCode code_;
  std::string message_;
};

inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) throw StatusError(status);
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  ThrowIfError(value.status());
  return *std::move(value);
}

// Installs the translator (once, at import).
void RegisterStatusTranslator();

// The status a Python exception stands for, for a handler that raised it:
// an axon.errors class's code, else INTERNAL with the exception's type and
// message. Call with the GIL held and the exception set (nb::python_error).
absl::Status StatusOfPythonError(const std::exception& error);

}  // namespace axon::python
