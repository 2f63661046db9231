// Whether this process is a fork() child of the one that opened its clients.
// A child inherits the parent's clients as memory only: their threads do not
// exist in it, a mutex one of them held stays held, and the session, its
// rings and its registrations are the parent's. So in a child libaxon uses
// none of them and tears none of them down: operations fail
// FAILED_PRECONDITION (the child connects a client of its own), and what
// would join a thread, take a lock or tell the daemon is left alone (its
// memory goes with the child).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"

namespace axon::internal {

// Starts watching for fork() (once per process; every Connect calls it).
void WatchForFork();
// How many fork()s deep this process is from where WatchForFork first ran.
uint64_t ForkGeneration();
// FAILED_PRECONDITION when this process is a fork() child of the one that
// was at `generation` (a client made there is its parent's).
absl::Status RefuseIfForkedSince(uint64_t generation);
// Keeps `what` for the rest of the process (reachable, so leak checkers
// stay quiet): in a child, what must not be torn down goes here.
void KeepForever(std::shared_ptr<void> what);

}  // namespace axon::internal
