// What the Python Client object wraps: the libaxon Client, the notifier its
// completions reach Python through, and the host memory it shares.
#pragma once

#include <map>
#include <memory>
#include <string>

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

  std::unique_ptr<Client> client;  // null once closed
  // Shared with libaxon's callbacks, which must never hold the client (the
  // last holder would then destroy it on libaxon's own thread).
  std::shared_ptr<Notifier> notifier = std::make_shared<Notifier>();
  KnownMemory known;
  // Endpoint.recv's receivers, by endpoint; touched under the GIL only.
  std::map<std::string, std::shared_ptr<Receiver>> receivers;

  Client& get() const;  // raises FAILED_PRECONDITION once closed
};

// A token for the notifier: unique in the process.
uint64_t NextToken();

// Ends the client's waiting receives with `why` (receive_binding.cc).
void CloseReceivers(ClientState& state, const absl::Status& why);

}  // namespace axon::python
