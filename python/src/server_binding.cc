// axon._axon.Server: Python handlers on libaxon's server threads. A handler
// runs with the GIL held, sees the request's tensors as views where they
// landed, and returns (header, [tensors]); an async handler gets a
// Responder to answer later from any thread (the Python package runs
// coroutines on an event loop that way).
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>

#include "axon/call.h"
#include "bindings.h"
#include "client_state.h"
#include "status.h"

namespace nb = nanobind;

namespace axon::python {
namespace {

// The request as Python sees it: method, sender, header, tensors.
nb::tuple RequestTuple(const Request& request, KnownMemory& known) {
  nb::list tensors;
  for (const Tensor& t : request.tensors) tensors.append(ExportTensor(t, known));
  return nb::make_tuple(std::string(request.method), request.from,
                        nb::bytes(request.header.data(), request.header.size()), tensors);
}

// A handler's (header, [tensors]) as a Reply; the tensors' objects stay
// alive until the reply has left.
absl::StatusOr<Reply> ReplyOf(nb::handle result, const KnownMemory& known) {
  nb::tuple pair = nb::cast<nb::tuple>(result);
  Reply reply;
  nb::bytes header = nb::cast<nb::bytes>(pair[0]);
  reply.header.assign(header.c_str(), header.size());
  for (nb::handle t : nb::cast<nb::list>(pair[1])) {
    reply.tensors.push_back(ImportTensor(t, known));
  }
  return reply;
}

nb::handle Callable(const std::shared_ptr<void>& held) {
  return nb::handle(static_cast<PyObject*>(held.get()));
}

absl::Status Unavailable() {
  return absl::UnavailableError("the Python interpreter is shutting down");
}

class ResponderHandle {
 public:
  ResponderHandle(Responder responder, std::shared_ptr<ClientState> state)
      : responder_(std::make_shared<Responder>(std::move(responder))), state_(std::move(state)) {}
  void Send(nb::handle result) {
    absl::StatusOr<Reply> reply;
    try {
      reply = ReplyOf(result, state_->known);
    } catch (const std::exception& e) {
      reply = absl::InvalidArgumentError(e.what());
    }
    Answer(std::move(reply));
  }
  void Fail(int code, const std::string& message) {
    Answer(absl::Status(static_cast<absl::StatusCode>(code), message));
  }

 private:
  void Answer(absl::StatusOr<Reply> reply) {
    nb::gil_scoped_release unlocked;
    responder_->Send(std::move(reply));  // later answers are ignored
  }
  std::shared_ptr<Responder> responder_;
  std::shared_ptr<ClientState> state_;
};

class ServerHandle {
 public:
  ServerHandle(std::shared_ptr<ClientState> state, const std::string& endpoint, int concurrency,
               uint32_t slot_bytes, uint32_t slots)
      : state_(std::move(state)),
        server_(std::make_unique<Server>(
            state_->get(), endpoint,
            ServerOptions{.concurrency = concurrency, .slot_bytes = slot_bytes, .slots = slots})) {}
  ~ServerHandle() { Stop(); }

  // `fn(method, from, header, tensors)` returns (header, [tensors]).
  void Handle(const std::string& method, nb::handle fn) {
    CheckRunning();
    std::shared_ptr<void> held = HoldPython(fn);  // released under the GIL
    std::weak_ptr<ClientState> weak = state_;
    server_->Handle(method, [held, weak](const Request& request) -> absl::StatusOr<Reply> {
      auto state = weak.lock();
      if (!state || PythonFinalizing()) return Unavailable();
      nb::gil_scoped_acquire gil;
      try {
        nb::object result = Callable(held)(RequestTuple(request, state->known));
        return ReplyOf(result, state->known);
      } catch (const std::exception& e) {
        return StatusOfPythonError(e);
      }
    });
  }
  // `fn(request, responder)` answers through the responder, any time.
  void HandleAsync(const std::string& method, nb::handle fn) {
    CheckRunning();
    std::shared_ptr<void> held = HoldPython(fn);
    std::weak_ptr<ClientState> weak = state_;
    server_->HandleAsync(method, [held, weak](const Request& request, Responder responder) {
      auto state = weak.lock();
      if (!state || PythonFinalizing()) {
        responder.Send(Unavailable());
        return;
      }
      nb::gil_scoped_acquire gil;
      try {
        Callable(held)(RequestTuple(request, state->known),
                       ResponderHandle(std::move(responder), state));
      } catch (const std::exception&) {
        // The package's wrapper answers its own errors; anything else drops
        // the responder, which answers INTERNAL.
      }
    });
  }
  void Start() {
    CheckRunning();
    nb::gil_scoped_release unlocked;
    ThrowIfError(server_->Start());
  }
  void Stop() {
    if (!server_) return;
    nb::gil_scoped_release unlocked;  // handlers may be waiting for the GIL
    server_->Stop();
    // Drops the handlers, and with them the Python functions they hold
    // (references the garbage collector cannot see, which would keep a
    // server and its handlers' closures alive in a cycle).
    server_.reset();
  }
  nb::list Stats() const {
    nb::list out;
    if (!server_) return out;
    for (const MethodStats& s : server_->Stats()) {
      nb::dict d;
      d["method"] = s.method;
      d["calls"] = s.calls;
      d["errors"] = s.errors;
      d["in_flight"] = s.in_flight;
      d["dropped_replies"] = s.dropped_replies;
      d["p50_us"] = s.p50_us;
      d["p99_us"] = s.p99_us;
      out.append(d);
    }
    return out;
  }

 private:
  void CheckRunning() const {
    if (!server_) throw StatusError(absl::FailedPreconditionError("the server was stopped"));
  }
  std::shared_ptr<ClientState> state_;
  std::unique_ptr<Server> server_;
};

}  // namespace

void BindServer(nb::module_& m) {
  nb::class_<ResponderHandle>(m, "Responder")
      .def("send", &ResponderHandle::Send)
      .def("fail", &ResponderHandle::Fail, nb::arg("code"), nb::arg("message"));
  nb::class_<ServerHandle>(m, "Server")
      .def(nb::init<std::shared_ptr<ClientState>, const std::string&, int, uint32_t, uint32_t>(),
           nb::arg("client"), nb::arg("endpoint"), nb::arg("concurrency") = 8,
           nb::arg("slot_bytes") = 128 * 1024, nb::arg("slots") = 256)
      .def("handle", &ServerHandle::Handle)
      .def("handle_async", &ServerHandle::HandleAsync)
      .def("start", &ServerHandle::Start)
      .def("stop", &ServerHandle::Stop)
      .def("stats", &ServerHandle::Stats);
}

}  // namespace axon::python
