// Sends and receives whose completion callback is registered in the same
// hold of the ring's lock that submits them: the call paths' way in, one
// lock round and no wrapper closure per operation (Client::Send followed by
// Client::OnComplete takes the lock twice and wraps the callback twice).
// Internal to libaxon.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "axon/client.h"
#include "client/lib/session.h"

namespace axon::internal {

// What a completion on the ring says, as the public API reports it.
Completed ToCompleted(const wire::Completion& completion);
// INVALID_ARGUMENT unless `name` fits a ring entry's endpoint field.
absl::Status CheckEndpointName(const std::string& name);

class Submit {
 public:
  // Client::Send of `parts`; `done`, if set, runs on completion (on the
  // thread that drains it, under no lock). `quiet`: it completes only if it
  // fails (wire::kSubmissionQuiet; only where Session::quiet_sends).
  static absl::StatusOr<Operation> Send(Client& client, const std::string& from,
                                        const std::string& to, uint64_t tag,
                                        absl::Span<const View> parts, const OpOptions& options,
                                        Session::Callback done, bool quiet = false);
  // Whether the daemon takes quiet sends.
  static bool QuietSends(const Client& client);
  // Session::Forget of operation `op_id`.
  static bool Forget(Client& client, uint64_t op_id);
  // Withdraws operation `target` (kCancel); `done` runs on the cancel's
  // completion: OK when the daemon still had it, NOT_FOUND when it had
  // finished.
  static absl::StatusOr<Operation> Cancel(Client& client, uint64_t target, Session::Callback done);
  // Client::PostRecv; `done` as above. `keep`: posted again after the
  // daemon restarts (the application's receives; not a call's, which fails).
  static absl::StatusOr<Operation> PostRecv(Client& client, const std::string& endpoint,
                                            uint64_t tag, const Buffer& buffer, size_t offset,
                                            size_t length, const OpOptions& options,
                                            Session::Callback done, bool keep = false);
};

}  // namespace axon::internal
