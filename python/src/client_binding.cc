// axon._axon.Client: attach, endpoints, shared memory, close.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>

#include "axon/tensor.h"
#include "bindings.h"
#include "client_state.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {

uint64_t NextToken() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

ClientState::~ClientState() {
  if (!client) return;
  // In a fork() child the receivers' waiters are the parent's.
  if (::getpid() == pid) CloseReceivers(*this, absl::UnavailableError("the client is closed"));
  if (PyGILState_Check() != 0) {
    nb::gil_scoped_release unlocked;
    client.reset();
  } else {
    client.reset();
  }
}

Client& ClientState::get() const {
  if (!client) throw StatusError(absl::FailedPreconditionError("the client is closed"));
  return *client;
}

namespace {

// A Python callable that libaxon's reconnector calls, and that may be let
// go on a thread without the GIL (the client closes with it released).
struct PythonCallback {
  nb::object fn;
  ~PythonCallback() {
    nb::gil_scoped_acquire gil;
    fn.reset();
  }
  void operator()(const ConnectionEvent& event) const {
    nb::gil_scoped_acquire gil;
    try {
      fn(event.connected, static_cast<int>(event.status.code()),
         std::string(event.status.message()), event.attempts, event.session_id);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("axon: on_connection");
    }
  }
};

std::shared_ptr<ClientState> Connect(const std::string& socket, const std::string& name,
                                     int timeout_ms, bool reconnect, nb::object on_connection,
                                     const std::string& placement) {
  auto state = std::make_shared<ClientState>();
  ClientOptions options{.socket_path = socket,
                        .client_name = name,
                        .placement = placement,
                        .timeout_ms = timeout_ms,
                        .reconnect = reconnect};
  if (!on_connection.is_none()) {
    auto callback = std::make_shared<PythonCallback>(PythonCallback{std::move(on_connection)});
    options.on_connection = [callback](const ConnectionEvent& event) { (*callback)(event); };
  }
  absl::StatusOr<std::unique_ptr<Client>> client;
  {
    nb::gil_scoped_release unlocked;
    client = Client::Connect(options);
  }
  state->client = ValueOrThrow(std::move(client));
  return state;
}

void Close(ClientState& state) {
  if (!state.client) return;
  CloseReceivers(state, absl::UnavailableError("the client is closed"));
  std::unique_ptr<Client> client;
  {
    nb::gil_scoped_release unlocked;
    std::unique_lock<std::shared_mutex> lock(state.use_mu);  // calls in progress end first
    nb::gil_scoped_acquire gil;
    client = std::move(state.client);
  }
  if (!client) return;  // another thread closed it meanwhile
  nb::gil_scoped_release unlocked;
  client.reset();  // detaches; waits for the progress thread
}

// All of `buffer` as a uint8 tensor that keeps it: what a tensor made
// from it carries is read in place.
template <typename BufferType>
nb::object ExportBuffer(ClientState& state, absl::StatusOr<BufferType> made) {
  auto shared = std::make_shared<BufferType>(ValueOrThrow(std::move(made)));
  Tensor t =
      ValueOrThrow(Tensor::Of(*shared, 0, dtype::kUInt8, {static_cast<int64_t>(shared->size())}));
  t.owner = shared;
  return ExportTensor(std::move(t), state.known);
}

// `bytes` of host memory shared with the daemon (a memfd).
nb::object AllocateHost(ClientState& state, size_t bytes) {
  return ExportBuffer(state, state.Use([&](Client& c) { return c.AllocateHost(bytes); }));
}

// `bytes` of GPU memory on `device`, a VMM allocation shared with the
// daemon by fd.
nb::object AllocateCuda(ClientState& state, size_t bytes, int device) {
  return ExportBuffer(state, state.Use([&](Client& c) { return c.AllocateCuda(bytes, device); }));
}

}  // namespace

void BindClient(nb::module_& m) {
  nb::class_<ClientState>(m, "Client")
      .def_static("connect", &Connect, nb::arg("socket") = "", nb::arg("name") = "",
                  nb::arg("timeout_ms") = 10000, nb::arg("reconnect") = true,
                  nb::arg("on_connection") = nb::none(), nb::arg("placement") = "")
      .def_prop_ro("connected", [](const ClientState& s) { return s.get().connected(); })
      .def("close", &Close)
      .def_prop_ro("closed", [](const ClientState& s) { return !s.client; })
      .def_prop_ro("fd", [](const ClientState& s) { return s.notifier->fd(); })
      .def("drain", [](ClientState& s) { return s.notifier->Drain(); })
      .def_prop_ro("node", [](const ClientState& s) { return s.get().node_name(); })
      .def_prop_ro("session_id", [](const ClientState& s) { return s.get().session_id(); })
      .def("bind",
           [](ClientState& s, const std::string& name) {
             return ValueOrThrow(s.Use([&](Client& c) { return c.BindEndpoint(name); }));
           })
      .def("unbind",
           [](ClientState& s, const std::string& name) {
             ThrowIfError(s.Use([&](Client& c) { return c.UnbindEndpoint(name); }));
           })
      .def("allocate_host", &AllocateHost, nb::arg("bytes"))
      .def("allocate_cuda", &AllocateCuda, nb::arg("bytes"), nb::arg("device"))
      .def("ping",
           [](ClientState& s) { ThrowIfError(s.Use([](Client& c) { return c.PingDaemon(); })); });
}

}  // namespace axon::python
