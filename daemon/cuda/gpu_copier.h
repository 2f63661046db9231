// The daemon's GPU copies: cudaMemcpyAsync on one stream per device, each
// batch of copies followed by an event that the UCX loop polls, so the loop
// never blocks on a copy. The device picks the stream: the GPU side of a
// host<->device copy, the source of a device<->device one (a peer copy when
// the two differ). UCX thread only.
//
// Host memory in a copy should be pinned (Region::PinForGpu); pageable
// memory works, but the driver then stages it and the call may block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "daemon/cuda/gather_kernel.h"

namespace axon::daemon {

class GpuCopier {
 public:
  GpuCopier() = default;
  // Waits for the copies in flight (their callbacks do not run).
  ~GpuCopier();
  GpuCopier(const GpuCopier&) = delete;
  GpuCopier& operator=(const GpuCopier&) = delete;

  // Queues a copy of `bytes` bytes on `device`'s stream.
  absl::Status Copy(int device, void* to, const void* from, size_t bytes);
  // Queues copies `from[i]` -> `to[i]` of `bytes[i]` bytes on `device`'s
  // stream: one cudaMemcpyBatchAsync where the runtime has it (the driver
  // then takes a thousand small copies in one call), else one Copy each.
  absl::Status CopyBatch(int device, absl::Span<void* const> to, absl::Span<const void* const> from,
                         absl::Span<const size_t> bytes);
  // The same where every pointer is device memory of `device`: blocks of up
  // to kGatherMaxBlock bytes go in one kernel launch per 1,280 pieces (see
  // gather_kernel.h), larger ones through the copy engines.
  absl::Status Gather(int device, absl::Span<void* const> to, absl::Span<const void* const> from,
                      absl::Span<const size_t> bytes);
  static constexpr size_t kGatherMaxBlock = 1 << 20;
  // Runs `done` (from Poll) once everything queued on `device` so far has
  // finished, with the error if a copy failed; at once if it cannot wait.
  void Then(int device, absl::AnyInvocable<void(absl::Status)> done);
  // Runs the callbacks of finished batches; true if it ran any.
  bool Poll();
  bool busy() const { return !waiting_.empty(); }

  uint64_t copies() const { return copies_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct Waiting {
    int device;
    void* event;  // cudaEvent_t
    absl::AnyInvocable<void(absl::Status)> done;
  };
  absl::Status Stream(int device, void** stream);
  // cudaMemcpyAsync on `stream` (device's), uncounted.
  absl::Status Queue(int device, void* stream, void* to, const void* from, size_t bytes);

  std::map<int, void*> streams_;  // device -> cudaStream_t
  std::deque<Waiting> waiting_;
  // Finished events, per device: an event records only on a stream of the
  // device it was made on.
  std::map<int, std::vector<void*>> spare_events_;
  uint64_t copies_ = 0, bytes_ = 0;
  std::vector<gather::Piece> pieces_;  // Gather's launch list, kept for its capacity
  bool batch_supported_ = true;        // until cudaMemcpyBatchAsync refused a batch
  bool gather_supported_ = true;       // until the gather kernel failed to launch
};

}  // namespace axon::daemon
