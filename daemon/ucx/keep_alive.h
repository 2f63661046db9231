// ucx::KeepAlive: what keeps a send's memory valid while UCX may read it.
// Most small sends complete inside the call, and then nothing needs to be
// kept: a borrowed reference (KeepAlive::Borrow) is copied only if UCX keeps
// the send in flight. That saves an atomic increment and decrement per send,
// and the decrement was the first locked instruction after the send's stores
// into the peer's FIFO, so it waited for them.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace axon::ucx {

class KeepAlive {
 public:
  KeepAlive() = default;
  KeepAlive(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): nothing to keep
  template <typename T>
  KeepAlive(std::shared_ptr<T> owned)  // NOLINT(google-explicit-constructor)
      : owned_(std::move(owned)) {}

  // Refers to `object` without copying it; the caller keeps `object` valid
  // until the send call returns.
  template <typename T>
  static KeepAlive Borrow(const std::shared_ptr<T>& object) {
    KeepAlive k;
    k.borrowed_ = &object;
    k.copy_ = [](const void* p) -> std::shared_ptr<const void> {
      return *static_cast<const std::shared_ptr<T>*>(p);
    };
    return k;
  }

  // A reference that keeps the memory valid after the call (a borrowed
  // object is copied now).
  std::shared_ptr<const void> Take() && {
    return borrowed_ != nullptr ? copy_(borrowed_) : std::move(owned_);
  }

 private:
  std::shared_ptr<const void> owned_;
  const void* borrowed_ = nullptr;
  std::shared_ptr<const void> (*copy_)(const void*) = nullptr;
};

}  // namespace axon::ucx
