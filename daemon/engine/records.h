// The records a message travels in through the engine: Pending while it
// waits to be matched on this node, Outgoing from the sending client's op to
// its ack when it goes to another node, Incoming from the data frame to where
// it landed when it comes from one. Plain data; no UCX calls.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "common/wire/data.h"
#include "daemon/memory/region.h"
#include "daemon/ucx/am_data.h"
#include "daemon/ucx/worker.h"

namespace axon::daemon {

// A message from another node for one of this node's endpoints.
struct Incoming {
  std::string node;         // the sending node
  uint64_t generation = 0;  // of the link (the connection) it came on
  uint64_t message_id = 0;
  uint64_t tag = 0;
  std::string from;                           // the sending endpoint
  std::string to;                             // the receiving endpoint, on this node
  ucx::AmData data;                           // eager: the bytes
  std::unique_ptr<ucx::PendingData> pending;  // rendezvous: still on the sender
  uint64_t bytes = 0;                         // this frame's payload, either way
  uint64_t total = 0;                         // the whole message's length
  uint64_t length() const { return total; }
  // A chunk of a chunked message (wire::DataBody): chunk 0 stands for the
  // whole message in the engine; the others follow it to where it landed.
  bool chunked = false;
  uint64_t offset = 0, first_id = 0;
  // By handle: where the bytes lie on the sender (wire::DataBody), and that
  // memory as opened here (in sequence order, before the engine sees it).
  std::string handle, bus_id;
  uint64_t handle_offset = 0;
  bool probe = false;
  std::shared_ptr<Region> source;
  // A one-sided operation's frame: for a window, not an endpoint (`to` empty).
  wire::WindowTarget window;
  // A stand-in on another engine shard (hops.cc): the names and sizes that
  // matching needs, while the message itself, with what UCX holds of it,
  // stays on shard `handed_by` under key `handed` (0: not a stand-in), and
  // lands there.
  uint64_t handed = 0;
  size_t handed_by = 0;
};

// Bytes of a client region, kept mapped while a message uses them.
struct Part {
  std::shared_ptr<Region> region;
  uint64_t offset = 0;
  uint64_t length = 0;
  const uint8_t* data() const { return region->data() + offset; }
};

// A gather send's parts after the first: inline up to a call's usual count
// (its frame, eight tensors), so the hot path allocates no list.
using PartList = absl::InlinedVector<Part, 8>;

// One side of a message on this node waiting for the other (Matcher): a
// client's send or receive, or a message from another node (`incoming`).
struct Pending {
  uint64_t session = 0;  // of a client's operation
  uint64_t op_id = 0;
  std::shared_ptr<Region> region;  // kept mapped while it waits
  uint64_t offset = 0;
  uint64_t length = 0;  // sends: of the whole message
  uint64_t tag = 0;
  PartList more;                       // a gather send: the parts after the first
  std::shared_ptr<Incoming> incoming;  // a message from another node (no session, no region)
  // Sends from here: the sending endpoint; receives: the receiving endpoint.
  // (A message from another node is named by `incoming`.)
  std::string from;
  // Receives that name their sender: its node and endpoint (empty: any).
  std::string source_node, source_endpoint;
  bool quiet = false;  // a send completed only when it fails (wire::kSubmissionQuiet)
};

// A one-sided operation's blocks for UCX RMA (Outgoing::rma): the
// initiator's bytes, kept mapped until the owner's daemon answers, and where
// each goes in (or comes from) the window.
struct RmaBlocks {
  std::vector<Part> local;
  std::vector<uint64_t> window_offsets;
  // The operation's notification, when it fits in this one request: the
  // owner's daemon delivers it once the blocks are in place (no frame of
  // its own, no round trip more).
  bool notify = false;
  uint64_t notify_tag = 0;
  Part notify_bytes;
};

// A send to another node, as the engine checked it.
struct Outgoing {
  uint64_t session = 0;
  uint64_t op_id = 0;
  std::string node;
  std::string from, to;  // endpoints
  uint64_t tag = 0;
  bool quiet = false;              // completed only when it fails (wire::kSubmissionQuiet)
  std::shared_ptr<Region> region;  // kept mapped until the ack
  uint64_t offset = 0;
  uint64_t length = 0;        // of the whole message
  PartList more;              // a gather send: the parts after [offset, offset + ...)
  absl::Status aborted;       // set when withdrawn: the reason its CANCELLED ack reports
  uint64_t generation = 0;    // of the node's connection it was staged on
  std::string handle;         // sent by handle: the IPC handle it named
  wire::WindowTarget window;  // a one-sided operation's frame (no `to`)
  // An RMA request (window.op kRmaWrite / kRmaRead): its blocks, which the
  // frame names by address and key rather than carrying.
  std::shared_ptr<const RmaBlocks> rma;
  // A chunk of a chunked send: the send completes once every chunk is
  // answered, with the first failure.
  struct Chunks {
    uint64_t unanswered = 0;
    absl::Status status;
    uint64_t count = 0, first_id = 0;
    uint64_t staged = 0;  // chunks copied or being copied; the rest wait for answers
    bool direct = false;  // in device bounce buffers
  };
  std::shared_ptr<Chunks> chunks;
};

}  // namespace axon::daemon
