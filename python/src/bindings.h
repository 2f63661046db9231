// The parts of axon._axon, one function per file that binds them.
#pragma once

#include <nanobind/nanobind.h>

namespace axon::python {

void BindClient(nanobind::module_& m);
void BindCalls(nanobind::module_& m);
void BindServer(nanobind::module_& m);
void BindMessages(nanobind::module_& m);
void BindReceives(nanobind::module_& m);
void BindWindows(nanobind::module_& m);

}  // namespace axon::python
