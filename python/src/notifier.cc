#include "notifier.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace axon::python {

Notifier::Notifier() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

Notifier::~Notifier() { ::close(fd_); }

void Notifier::Push(uint64_t token) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake = ready_.empty();
    ready_.push_back(token);
  }
  if (wake) {
    const uint64_t one = 1;
    // Only EAGAIN (the counter is full) can fail here: it is readable anyway.
    (void)!::write(fd_, &one, sizeof(one));
  }
}

std::vector<uint64_t> Notifier::Drain() {
  uint64_t count = 0;
  (void)!::read(fd_, &count, sizeof(count));  // EAGAIN when nothing was written
  std::vector<uint64_t> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.swap(ready_);
  return out;
}

}  // namespace axon::python
