// One-sided transfers: a process exposes registered memory as a window, hands
// its descriptor to others by any means (a call, a message, etcd), and they
// write into it or read from it without the owner posting anything. An
// operation may carry a notification, which the owner receives as a message
// on the endpoint it named when it exposed the window.
//
//   // owner
//   auto kv = client->AllocateHost(64 << 20);
//   auto window = client->Expose(*kv, 0, kv->size(), {.notify_endpoint = "decode-0"});
//   send window->descriptor to the writer...
//   auto note = client->Receive("decode-0");        // tag and bytes of the writer's choice
//
//   // writer
//   auto window = axon::Window::FromDescriptor(bytes);
//   axon::Block blocks[] = {{&buffer, 0, /*window_offset=*/4096, 16384}, ...};
//   auto op = client->Write("prefill-0", *window, blocks, axon::Notification{7, "layer 3"});
//   client->Wait(*op);                              // the bytes are in place
//
// Ordering: an operation's notification is delivered only after all of its
// bytes are in place; notifications of one initiator endpoint to one window
// arrive in the order their operations' bytes finished. Blocks of one
// operation, and different operations, land in no particular order.
//
// Checks are the owner's daemon's: the capability in the descriptor (so
// knowing a window id is not enough), the access list and access kind, and
// every block's bounds, before any byte of the operation moves.
//
// Revocation: Unexpose, unregistering the window's memory, or the owner's
// session ending revokes the window. Operations that have not started fail
// FAILED_PRECONDITION; Unexpose (and Unregister) return once no operation
// writes into or reads from the memory, which may then be freed or reused.
// A restarted daemon knows no window of its earlier run: expose again.
//
// Paths: windows on this node (a memcpy for host memory, one gather kernel
// for small GPU blocks, the GPU's copy engines for large ones, both ways
// mixed), and on other nodes (host memory by UCX RMA, which the owner's
// daemon drives after its checks; GPU memory as data frames on the daemons'
// message path). docs/WINDOWS.md has the details.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace axon {

class Buffer;

// A window's descriptor: what an initiator needs to use it.
struct Window {
  std::string node;     // the owner's node
  uint64_t id = 0;      // the window, on that node
  uint64_t length = 0;  // bytes
  bool readable = true, writable = true;
  // The whole descriptor, capability included: opaque bytes (about 60) to
  // hand to initiators. Whoever holds them may use the window, within its
  // access list.
  std::string descriptor;

  // INVALID_ARGUMENT for bytes that are not a descriptor.
  static absl::StatusOr<Window> FromDescriptor(absl::string_view bytes);
};

struct ExposeOptions {
  // An endpoint the exposing client bound: notifications of operations on
  // the window arrive there as messages (the initiator's endpoint as sender,
  // the notification's tag and bytes). Empty: operations may not notify.
  std::string notify_endpoint;
  // Who may use the window: "node" (any endpoint there) or "node/endpoint",
  // at most 64 entries. Empty: whoever holds the descriptor.
  std::vector<std::string> allowed;
  bool readable = true, writable = true;
};

// One block of an operation: bytes [offset, offset + length) of `buffer`
// (this client's), and where they go in the window (Write) or come from
// (Read).
struct Block {
  const Buffer* buffer = nullptr;
  size_t offset = 0;
  uint64_t window_offset = 0;
  size_t length = 0;
};

// A block given as a tensor (Client::WriteTensors, ReadTensors), in
// axon/tensor.h.
struct TensorBlock;

// What the owner receives once an operation's bytes are in place: a message
// with `tag` and `bytes` (at most 4096) from the initiator's endpoint.
struct Notification {
  uint64_t tag = 0;
  absl::string_view bytes;
};

inline constexpr size_t kMaxBlocksPerOperation = 65536;

}  // namespace axon
