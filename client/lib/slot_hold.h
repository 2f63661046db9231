// A receive-area slot held past its arrival. Internal.
#pragma once

#include <cstdint>
#include <memory>

#include "axon/client.h"

namespace axon::internal {

struct Session;

// A receive-area slot, given back to the daemon when the last holder goes:
// a call server's request and its inline tensors, which a handler may keep
// past its reply, or a message taken with Client::Hold (each Tensor's
// `owner`). Holds the session, not the Client, and the area libaxon made,
// so a tensor may outlive both.
class SlotHold {
 public:
  SlotHold(std::shared_ptr<Session> session, std::shared_ptr<const Buffer> area, uint64_t slot)
      : session_(std::move(session)), area_(std::move(area)), slot_(slot) {}
  ~SlotHold();
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;

 private:
  std::shared_ptr<Session> session_;
  std::shared_ptr<const Buffer> area_;
  uint64_t slot_;
};

}  // namespace axon::internal
