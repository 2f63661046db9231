// What the Python Client object wraps: the libaxon Client, the notifier its
// completions reach Python through, and the host memory it shares.
#pragma once

#include <nanobind/nanobind.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "axon/client.h"
#include "notifier.h"
#include "receiver.h"
#include "tensors.h"

namespace axon::python {

struct ClientState {
  ClientState() = default;
  // Detaches if Python never closed it, without the GIL: libaxon's threads
  // may need it to let go of Python objects while the client stops.
  ~ClientState();
  ClientState(const ClientState&) = delete;
  ClientState& operator=(const ClientState&) = delete;

  // The process that connected it: a fork() child has a copy it must not
  // use or close (libaxon leaves the parent's session alone there).
  const pid_t pid = ::getpid();
  // Null once closed. Set and cleared with the GIL held and use_mu held
  // exclusively: read it under either.
  std::unique_ptr<Client> client;
  // Held shared by Use, exclusively by Close, only ever without the GIL.
  mutable std::shared_mutex use_mu;
  // Shared with libaxon's callbacks, which must never hold the client (the
  // last holder would then destroy it on libaxon's own thread).
  std::shared_ptr<Notifier> notifier = std::make_shared<Notifier>();
  KnownMemory known;
  // Endpoint.recv's receivers, by endpoint; touched under the GIL only.
  std::map<std::string, std::shared_ptr<Receiver>> receivers;

  Client& get() const;  // with the GIL; raises FAILED_PRECONDITION once closed

  // Runs `f(client)` without the GIL while Close cannot destroy the client
  // (Close waits for it); FAILED_PRECONDITION once closed. `f` returns an
  // absl::Status or an absl::StatusOr.
  template <typename F>
  auto Use(F&& f) const -> decltype(f(std::declval<Client&>())) {
    nanobind::gil_scoped_release unlocked;
    std::shared_lock<std::shared_mutex> lock(use_mu);
    if (!client) return absl::FailedPreconditionError("the client is closed");
    return f(*client);
  }
};

// A token for the notifier: unique in the process.
uint64_t NextToken();

// Ends the client's waiting receives with `why` (receive_binding.cc).
void CloseReceivers(ClientState& state, const absl::Status& why);

}  // namespace axon::python
