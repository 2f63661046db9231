#include "status.h"

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

namespace nb = nanobind;

namespace axon::python {

void RegisterStatusTranslator() {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      nb::object cls =
          nb::module_::import_("axon.errors").attr("error_class")(static_cast<int>(e.code()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}

absl::Status StatusOfPythonError(const std::exception& error) {
  const auto* python = dynamic_cast<const nb::python_error*>(&error);
  if (python == nullptr) return absl::InternalError(error.what());
  nb::object value = nb::borrow(python->value());
  nb::object code = nb::getattr(value, "code", nb::none());
  std::string text = nb::cast<std::string>(nb::str(value));
  if (!code.is_none() && nb::isinstance<nb::int_>(code)) {
    const int c = nb::cast<int>(code);
    if (c > 0 && c <= static_cast<int>(absl::StatusCode::kUnauthenticated)) {
      return absl::Status(static_cast<absl::StatusCode>(c), text);
    }
  }
  std::string type = nb::cast<std::string>(nb::str(nb::type_name(value.type())));
  return absl::InternalError(type + ": " + text);
}

}  // namespace axon::python
