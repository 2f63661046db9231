// axon._axon: the extension under `import axon` (python/axon/). Only the
// Python package uses it directly.
#include <nanobind/nanobind.h>

#include "bindings.h"
#include "status.h"

NB_MODULE(_axon, m) {
  m.doc() = "libaxon bindings; use the axon package";
  axon::python::RegisterStatusTranslator();
  axon::python::BindClient(m);
  axon::python::BindCalls(m);
  axon::python::BindServer(m);
  axon::python::BindMessages(m);
  axon::python::BindReceives(m);
  axon::python::BindWindows(m);
}
