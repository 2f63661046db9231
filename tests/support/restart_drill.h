// Test support: clients that live through three restarts of their daemon
// (ClientOptions::reconnect). Two daemons: node-a, restarted the way
// `systemctl restart` does it (SIGTERM, then a new process on the same
// socket), and node-b with a call server that echoes. On node-a a sender
// streams messages to a receiver and calls node-b throughout; after each
// restart both clients must re-attach on their own and later operations
// succeed. A receive-area message held across the restarts keeps its bytes,
// and a receive posted before them completes after them. The memory is the
// caller's choice (host, or GPU for tests/gpu).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "axon/call.h"
#include "axon/client.h"
#include "axon/tensor.h"
#include "tests/support/cluster.h"

namespace axon::testing {

struct DrillMemory {
  // A buffer of `bytes` for messages and call tensors (host or GPU).
  std::function<absl::StatusOr<std::unique_ptr<Buffer>>(Client&, size_t bytes)> allocate;
  // Sets bytes [offset, offset + length) of `buffer` to `value`.
  std::function<void(const Buffer&, size_t offset, size_t length, char value)> fill;
  // Bytes [offset, offset + length) of `buffer`.
  std::function<std::string(const Buffer&, size_t offset, size_t length)> read;
};

// Outcomes of operations by status code, for the streams.
class Outcomes {
 public:
  void Add(const absl::Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[st.code()];
    if (!Expected(st.code()) && first_unexpected_.ok()) first_unexpected_ = st;
  }
  int Count(absl::StatusCode code) {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_[code];
  }
  // What a restart may do to an operation: fail it UNAVAILABLE (in flight,
  // or submitted while reconnecting), NOT_FOUND (the other client had not
  // re-bound its endpoint yet), DEADLINE_EXCEEDED (a call whose reply went
  // with the daemon).
  static bool Expected(absl::StatusCode code) {
    return code == absl::StatusCode::kOk || code == absl::StatusCode::kUnavailable ||
           code == absl::StatusCode::kNotFound || code == absl::StatusCode::kDeadlineExceeded;
  }
  absl::Status first_unexpected() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_unexpected_;
  }

 private:
  std::mutex mu_;
  std::map<absl::StatusCode, int> counts_;
  absl::Status first_unexpected_;
};

inline void RunRestartDrill(const TempDir& dir, const DrillMemory& memory) {
  constexpr size_t kMessage = 64;
  constexpr size_t kTensor = 16384;
  constexpr size_t kSlot = 4096;
  Cluster cluster(dir, {"node-a", "node-b"});
  ASSERT_TRUE(WaitFor([&] { return cluster.AllUp(); }, std::chrono::seconds(15)));

  auto remote = Client::Connect({.socket_path = cluster.daemons[1]->socket()});
  ASSERT_TRUE(remote.ok()) << remote.status();
  ASSERT_TRUE((*remote)->BindEndpoint("srv").ok());
  Server server(**remote, "srv");
  server.Handle("echo", [](const Request& request) -> absl::StatusOr<Reply> {
    return Reply{.header = std::string(request.header), .tensors = request.tensors};
  });
  ASSERT_TRUE(server.Start().ok());

  std::atomic<int> receiver_back{0}, sender_back{0};
  std::mutex events_mu;
  std::vector<std::string> restore_problems;
  const auto counting = [&](std::atomic<int>& back) {
    return [&](const ConnectionEvent& event) {
      if (!event.connected) return;
      if (!event.status.ok()) {
        std::lock_guard<std::mutex> lock(events_mu);
        restore_problems.push_back(event.status.ToString());
      }
      ++back;
    };
  };
  auto receiver = Client::Connect(
      {.socket_path = cluster.daemons[0]->socket(), .on_connection = counting(receiver_back)});
  auto sender = Client::Connect({.socket_path = cluster.daemons[0]->socket(),
                                 .progress_thread = true,
                                 .on_connection = counting(sender_back)});
  ASSERT_TRUE(receiver.ok() && sender.ok());
  ASSERT_TRUE((*receiver)->BindEndpoint("sink").ok());
  ASSERT_TRUE((*sender)->BindEndpoint("me").ok());
  auto area = (*receiver)->AllocateHost(32 * kSlot);
  ASSERT_TRUE(area.ok());
  ASSERT_TRUE((*receiver)->SetReceiveArea(*area, kSlot).ok());
  auto payload = memory.allocate(**sender, kMessage + kTensor);
  ASSERT_TRUE(payload.ok()) << payload.status();
  const Buffer& source = **payload;
  auto tensor = Tensor::Of(source, kMessage, dtype::kUInt8, {static_cast<int64_t>(kTensor)});
  ASSERT_TRUE(tensor.ok());
  memory.fill(source, kMessage, kTensor, 'T');

  // A message the receiver holds across the restarts, and a receive posted
  // before them.
  memory.fill(source, 0, kMessage, 'H');
  auto held_send = (*sender)->Send("me", "sink", 5, source, 0, kMessage);
  ASSERT_TRUE(held_send.ok() && (*sender)->Wait(*held_send)->status.ok());
  auto held = (*receiver)->Receive("sink");
  ASSERT_TRUE(held.ok()) << held.status();
  auto landing = memory.allocate(**receiver, kMessage);
  ASSERT_TRUE(landing.ok()) << landing.status();
  auto kept = (*receiver)->PostRecv("sink", 777, **landing, 0, kMessage);
  ASSERT_TRUE(kept.ok());
  memory.fill(source, 0, kMessage, 'S');

  Caller caller(**sender, "me");
  Outcomes sends, calls;
  std::atomic<bool> stop{false};
  std::atomic<int> received{0}, corrupt{0};
  std::thread streaming([&] {
    while (!stop) {
      auto op = (*sender)->Send("me", "sink", 2, source, 0, kMessage);
      absl::Status st = op.status();
      if (op.ok()) {
        auto done = (*sender)->Wait(*op, 5000);
        st = done.ok() ? done->status : done.status();
      }
      sends.Add(st);
      if (!st.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::thread calling([&] {
    while (!stop) {
      auto reply = caller.Call("node-b/srv", "echo", "hi", absl::MakeConstSpan(&*tensor, 1),
                               {.timeout_ms = 3000});
      absl::Status st = reply.status();
      if (reply.ok() && (reply->header != "hi" || reply->tensors.size() != 1 ||
                         reply->tensors[0].bytes() != kTensor)) {
        st = absl::DataLossError("the echo came back different");
      }
      calls.Add(st);
      if (!st.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::thread receiving([&] {
    while (!stop) {
      auto message = (*receiver)->Receive("sink", 100);
      if (!message.ok()) continue;
      if (message->length != kMessage || message->data[0] != 'S' ||
          message->data[kMessage - 1] != 'S') {
        ++corrupt;
      }
      ++received;
      (void)(*receiver)->Release(*message);
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread*> threads;
    ~Join() {
      stop = true;
      for (std::thread* t : threads) t->join();
    }
  } join{stop, {&streaming, &calling, &receiving}};

  const auto progress = [&](Outcomes& outcomes) { return outcomes.Count(absl::StatusCode::kOk); };
  ASSERT_TRUE(WaitFor([&] { return progress(sends) > 10 && progress(calls) > 10; },
                      std::chrono::seconds(20)));
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE("restart " + std::to_string(round));
    cluster.Start(0);  // SIGTERM (the old daemon must exit cleanly), then a new one
    ASSERT_TRUE(WaitFor([&] { return receiver_back == round && sender_back == round; },
                        std::chrono::seconds(20)))
        << "receiver " << receiver_back << ", sender " << sender_back;
    EXPECT_TRUE((*sender)->connected() && (*receiver)->connected());
    // Both streams move again.
    const int sends_before = progress(sends), calls_before = progress(calls);
    const int received_before = received;
    EXPECT_TRUE(WaitFor(
        [&] {
          return progress(sends) > sends_before + 20 && progress(calls) > calls_before + 20 &&
                 received > received_before + 20;
        },
        std::chrono::seconds(30)))
        << "sends " << progress(sends) - sends_before << ", calls "
        << progress(calls) - calls_before << ", received " << received - received_before;
    // And what comes now all succeeds.
    for (int i = 0; i < 10; ++i) {
      auto op = (*sender)->Send("me", "sink", 2, source, 0, kMessage);
      ASSERT_TRUE(op.ok()) << op.status();
      auto done = (*sender)->Wait(*op, 5000);
      ASSERT_TRUE(done.ok() && done->status.ok()) << (done.ok() ? done->status : done.status());
      auto reply = caller.Call("node-b/srv", "echo", "hi", absl::MakeConstSpan(&*tensor, 1));
      ASSERT_TRUE(reply.ok()) << reply.status();
    }
  }
  stop = true;
  streaming.join();
  calling.join();
  receiving.join();
  join.threads.clear();

  EXPECT_TRUE(sends.first_unexpected().ok()) << sends.first_unexpected();
  EXPECT_TRUE(calls.first_unexpected().ok()) << calls.first_unexpected();
  EXPECT_EQ(corrupt, 0);
  {
    std::lock_guard<std::mutex> lock(events_mu);
    EXPECT_TRUE(restore_problems.empty()) << restore_problems.front();
  }
  // The held slot was never landed in.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(held->data), kMessage),
            std::string(kMessage, 'H'));
  EXPECT_TRUE((*receiver)->Release(*held).ok());
  // The receive posted before the restarts takes a message sent after them.
  memory.fill(source, 0, kMessage, 'K');
  auto for_kept = (*sender)->Send("me", "sink", 777, source, 0, kMessage);
  ASSERT_TRUE(for_kept.ok());
  auto kept_done = (*receiver)->Wait(*kept, 10000);
  ASSERT_TRUE(kept_done.ok()) << kept_done.status();
  EXPECT_TRUE(kept_done->status.ok()) << kept_done->status;
  EXPECT_EQ(memory.read(**landing, 0, kMessage), std::string(kMessage, 'K'));
  auto sent = (*sender)->Wait(*for_kept, 10000);
  EXPECT_TRUE(sent.ok() && sent->status.ok());
  server.Stop();
}

// Host memory for the drill.
inline DrillMemory HostDrillMemory() {
  return {
      .allocate = [](Client& client, size_t bytes) -> absl::StatusOr<std::unique_ptr<Buffer>> {
        auto buffer = client.AllocateHost(bytes);
        if (!buffer.ok()) return buffer.status();
        return std::unique_ptr<Buffer>(new HostBuffer(*std::move(buffer)));
      },
      .fill = [](const Buffer& b, size_t offset, size_t length,
                 char value) { std::memset(static_cast<char*>(b.data()) + offset, value, length); },
      .read =
          [](const Buffer& b, size_t offset, size_t length) {
            return std::string(static_cast<const char*>(b.data()) + offset, length);
          }};
}

}  // namespace axon::testing
