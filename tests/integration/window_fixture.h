// WindowTest: the fixture of the one-sided transfer tests (window_test.cc,
// window_fault_test.cc), each test three times: both clients on one daemon
// (local), and the initiator on node-a, the owner on node-b, over UCX: with
// the owner serving host windows by RMA (the default), and with a frame per
// block (peers.window_transfer=frames). The receiver ("b") exposes windows,
// the sender ("a") writes into and reads from them.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "axon/client.h"
#include "tests/support/pair_test.h"

namespace axon::testing {

enum class Path { kLocal, kRma, kFrames };

inline std::string WindowPathName(const ::testing::TestParamInfo<Path>& p) {
  return p.param == Path::kLocal ? "Local" : p.param == Path::kRma ? "Rma" : "Frames";
}

class WindowTest : public ::testing::TestWithParam<Path>, protected Pair {
 protected:
  void SetUp() override {
    StartPair(GetParam() != Path::kLocal, frames() ? std::vector<std::string>{"peers.window_"
                                                                              "transfer=frames"}
                                                   : std::vector<std::string>{});
  }
  bool rma() const { return GetParam() == Path::kRma; }
  bool frames() const { return GetParam() == Path::kFrames; }

  // A host window of `bytes` owned by the receiver, notifying "b".
  void ExposeHost(size_t bytes, ExposeOptions options = {.notify_endpoint = "b"}) {
    auto memory = receiver_->AllocateHost(bytes);
    ASSERT_TRUE(memory.ok()) << memory.status();
    owned_ = std::make_unique<HostBuffer>(*std::move(memory));
    std::memset(owned_->data(), 0, bytes);
    auto window = receiver_->Expose(*owned_, 0, bytes, options);
    ASSERT_TRUE(window.ok()) << window.status();
    // As an initiator sees it: from the descriptor's bytes alone.
    auto seen = Window::FromDescriptor(window->descriptor);
    ASSERT_TRUE(seen.ok()) << seen.status();
    window_ = *seen;
  }

  absl::Status Finish(absl::StatusOr<Operation> op, Client& client, size_t* length = nullptr) {
    if (!op.ok()) return op.status();
    auto done = client.Wait(*op, 20000);
    if (!done.ok()) return done.status();
    if (length != nullptr) *length = done->length;
    return done->status;
  }

  uint8_t* owned() { return static_cast<uint8_t*>(owned_->data()); }

  // `count` blocks of `size` bytes of `buffer`, reversed: block i goes to
  // window slot count - 1 - i.
  static std::vector<Block> Reversed(const Buffer& buffer, size_t count, size_t size) {
    std::vector<Block> blocks;
    blocks.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      blocks.push_back({&buffer, i * size, (count - 1 - i) * size, size});
    }
    return blocks;
  }
  // Whether the window holds `source`'s blocks where Reversed puts them.
  ::testing::AssertionResult HoldsReversed(const uint8_t* source, size_t count, size_t size) {
    for (size_t i = 0; i < count; ++i) {
      const auto held = Checksum(owned() + (count - 1 - i) * size, size);
      const auto sent = Checksum(source + i * size, size);
      if (held != sent) {
        return ::testing::AssertionFailure() << "block " << i << ": " << held << " != " << sent;
      }
    }
    return ::testing::AssertionSuccess();
  }

  // Writes `batch` into `window` over and over on a thread of its own; once
  // three have landed, runs `kill`, and returns the status of the batch
  // that then failed. Never a hang: every batch's wait is bounded, and the
  // writer is joined on every way out.
  absl::Status WriteUntilKilled(const Window& window, const std::vector<Block>& batch,
                                absl::FunctionRef<void()> kill) {
    std::atomic<int> ok{0};
    std::atomic<bool> stop{false}, ended{false};
    absl::Status last;
    std::thread writer([&] {
      absl::Cleanup end = [&] { ended = true; };
      while (!stop.load()) {
        last = Finish(sender_->Write("a", window, batch), *sender_);
        if (!last.ok()) return;
        ++ok;
      }
    });
    absl::Cleanup join = [&] {
      stop = true;
      writer.join();
    };
    if (!WaitFor([&] { return ok.load() >= 3; }, std::chrono::seconds(20))) {
      std::move(join).Invoke();
      return absl::InternalError(
          absl::StrCat("fewer than three batches landed: ", last.ToString()));
    }
    kill();
    // The writer ends at the first batch that fails.
    if (!WaitFor([&] { return ended.load(); }, std::chrono::seconds(30))) {
      std::move(join).Invoke();
      return absl::DeadlineExceededError("no batch failed within 30 s of the kill");
    }
    std::move(join).Invoke();
    return last;
  }

  std::unique_ptr<HostBuffer> owned_;
  Window window_;
};

}  // namespace axon::testing
