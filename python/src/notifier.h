// Completions handed to Python: libaxon's threads push the token of what
// completed, and the event loop (or a waiting thread) drains them. An
// eventfd, written when the queue turns non-empty, is what asyncio watches
// (loop.add_reader); Drain empties both, so an idle client's fd stays quiet
// and nothing polls.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace axon::python {

class Notifier {
 public:
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Any thread; never touches Python.
  void Push(uint64_t token);
  // The tokens pushed since the last Drain, oldest first; reads the eventfd.
  std::vector<uint64_t> Drain();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::mutex mu_;
  std::vector<uint64_t> ready_;
};

}  // namespace axon::python
