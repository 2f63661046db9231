// WindowTable: the windows this node's clients exposed for one-sided
// transfers, and the checks every Write and Read passes before it touches
// one. The daemon that owns a window decides: the capability, the access
// list and the bounds are checked here, never taken from the initiator.
//
// Lifetime. An operation holds its window (a Grant) while it moves bytes.
// Revoking a window (Unexpose, the region unregistered, the owner's session
// closed) refuses new operations at once and then waits for the holds to go,
// so that when revocation returns no operation writes into the memory any
// more: the client may free or reuse it.
//
// Thread-safe. Revocation waits, so it must not run on an engine thread
// (whose GPU copies release holds); the control, session-socket and io
// threads call it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/annotated_mutex.h"
#include "common/wire/window.h"
#include "daemon/memory/region.h"

namespace axon::daemon {

inline constexpr size_t kMaxWindowAllowed = 64;  // entries in an access list

// OUT_OF_RANGE unless [offset, offset + length) lies in window `id` of
// `window_length` bytes (overflow included).
absl::Status CheckWindowBounds(uint64_t id, uint64_t window_length, uint64_t offset,
                               uint64_t length);

struct ExposeRequest {
  uint64_t session = 0;
  uint64_t region_id = 0;
  std::shared_ptr<Region> region;
  uint64_t offset = 0, length = 0;  // within the region
  // The owner's endpoint (bound by `session`) that receives notifications;
  // empty: operations on the window carry none.
  std::string notify_endpoint;
  // Who may write or read: "node" (any endpoint there) or "node/endpoint".
  // Empty: anyone who holds the descriptor.
  std::vector<std::string> allowed;
  uint8_t access = wire::kWindowRead | wire::kWindowWrite;
};

struct WindowInfo {
  uint64_t id = 0, session = 0, region_id = 0, offset = 0, length = 0;
  std::string notify_endpoint;
  std::vector<std::string> allowed;
  uint8_t access = 0;
  uint64_t holds = 0;
  uint64_t writes = 0, reads = 0, bytes_written = 0, bytes_read = 0;
  // By path: from this node, or from another.
  uint64_t local_ops = 0, local_bytes = 0, remote_ops = 0, remote_bytes = 0;
  // Of the remote ones, those served by UCX RMA.
  uint64_t rma_ops = 0, rma_bytes = 0;
};

class WindowTable {
 private:
  struct Window;
  struct Core;

 public:
  WindowTable(std::string node_name, uint64_t max_per_session);
  ~WindowTable();
  WindowTable(const WindowTable&) = delete;
  WindowTable& operator=(const WindowTable&) = delete;

  // A new window over `request.region`; INVALID_ARGUMENT for bytes outside
  // the region or a bad access list, RESOURCE_EXHAUSTED past the session's
  // limit.
  absl::StatusOr<wire::WindowDescriptor> Expose(ExposeRequest request);

  // One operation's hold on a window: its memory is not revoked from under
  // it until the Grant goes. Counts what the operation moved.
  class Grant {
   public:
    ~Grant();
    Grant(const Grant&) = delete;
    Grant& operator=(const Grant&) = delete;
    const std::shared_ptr<Region>& region() const { return region_; }
    // The window's first byte, in the region.
    uint8_t* data() const { return region_->data() + offset_; }
    uint64_t offset() const { return offset_; }  // of the window in the region
    uint64_t length() const { return length_; }
    uint64_t id() const { return id_; }
    uint64_t owner() const { return owner_; }  // the owner's session
    const std::string& notify_endpoint() const { return notify_endpoint_; }
    // OUT_OF_RANGE unless [offset, offset + length) lies in the window.
    absl::Status Check(uint64_t offset, uint64_t length) const {
      return CheckWindowBounds(id_, length_, offset, length);
    }
    // FAILED_PRECONDITION unless the window takes notifications (it was
    // exposed with a notify endpoint).
    absl::Status CheckNotifies() const;
    // Counts `bytes` moved by this operation (written into the window, or
    // read out of it).
    void Moved(uint64_t bytes) { moved_ += bytes; }
    // The operation is served by UCX RMA (counted apart).
    void ByRma() { rma_ = true; }

   private:
    friend class WindowTable;
    Grant(std::shared_ptr<Core> core, std::shared_ptr<Window> window, uint8_t access, bool remote);
    std::shared_ptr<Core> core_;
    std::shared_ptr<Window> window_;
    std::shared_ptr<Region> region_;
    uint64_t offset_ = 0, length_ = 0, id_ = 0, owner_ = 0;
    std::string notify_endpoint_;
    uint8_t access_ = 0;
    bool remote_ = false;  // for an initiator on another node
    bool rma_ = false;
    uint64_t moved_ = 0;
  };

  // A hold on window `id` for `access` (kWindowRead or kWindowWrite) by
  // endpoint `endpoint` of node `node`. NOT_FOUND (no such window),
  // FAILED_PRECONDITION (revoked), UNAUTHENTICATED (wrong capability),
  // PERMISSION_DENIED (not on the access list, or the window does not
  // allow `access`).
  absl::StatusOr<std::shared_ptr<Grant>> Acquire(uint64_t id, const wire::Capability& capability,
                                                 absl::string_view node, absl::string_view endpoint,
                                                 uint8_t access);

  // Revokes window `id` of `session` and waits up to `wait` for operations
  // holding it. NOT_FOUND when the session has no such window;
  // DEADLINE_EXCEEDED when operations still hold it after `wait` (it is
  // revoked all the same: nothing new starts on it).
  absl::Status Unexpose(uint64_t session, uint64_t id, absl::Duration wait);
  // Revokes every window of `session` over region `region_id`, waiting as
  // Unexpose does; OK when none held on past `wait`.
  absl::Status RevokeRegion(uint64_t session, uint64_t region_id, absl::Duration wait);
  // Revokes every window of `session` (it closed), waiting the same way.
  absl::Status RevokeSession(uint64_t session, absl::Duration wait);

  std::vector<WindowInfo> List() const;
  size_t size() const;

 private:
  // Revokes the windows for which `match` holds, then waits for their holds.
  template <typename Match>
  absl::Status Revoke(Match match, absl::Duration wait, absl::string_view why);

  const std::string node_name_;
  const uint64_t max_per_session_;
  // Window ids: this run's random prefix in the high 32 bits, so that a
  // descriptor from before a restart names no window of this run.
  const uint64_t run_;
  std::shared_ptr<Core> core_;
};

}  // namespace axon::daemon
