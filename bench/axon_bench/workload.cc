#include "bench/axon_bench/workload.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"

namespace axon::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kPing = 1, kPong = 2, kData = 3, kProbe = 4;
constexpr int kWaitMs = 60000;

absl::Status Check(const absl::StatusOr<Completed>& done, const char* what) {
  if (!done.ok())
    return absl::Status(done.status().code(), absl::StrCat(what, ": ", done.status().message()));
  if (!done->status.ok()) {
    return absl::Status(done->status.code(), absl::StrCat(what, ": ", done->status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Pair> MakePair(const std::string& send_socket, const std::string& receive_socket,
                              int index, size_t bytes, bool place) {
  Pair p;
  p.sender_endpoint = absl::StrCat("bench-s", index);
  p.receiver_endpoint = absl::StrCat("bench-r", index);
  const std::string placement = place ? absl::StrCat("bench-pair-", index) : "";
  auto s = Client::Connect(
      {.socket_path = send_socket, .client_name = p.sender_endpoint, .placement = placement});
  if (!s.ok()) return s.status();
  auto r = Client::Connect(
      {.socket_path = receive_socket, .client_name = p.receiver_endpoint, .placement = placement});
  if (!r.ok()) return r.status();
  p.sender = *std::move(s);
  p.receiver = *std::move(r);
  auto sa = p.sender->BindEndpoint(p.sender_endpoint);
  if (!sa.ok()) return sa.status();
  auto ra = p.receiver->BindEndpoint(p.receiver_endpoint);
  if (!ra.ok()) return ra.status();
  p.sender_address = *sa;
  p.receiver_address = *ra;
  auto sb = p.sender->AllocateHost(bytes);
  if (!sb.ok()) return sb.status();
  auto rb = p.receiver->AllocateHost(bytes);
  if (!rb.ok()) return rb.status();
  p.send_buffer = std::make_unique<HostBuffer>(*std::move(sb));
  p.receive_buffer = std::make_unique<HostBuffer>(*std::move(rb));
  std::memset(p.send_buffer->data(), 0x5a, bytes);
  return p;
}

absl::Status WaitUntilConnected(Pair& pair, int attempts) {
  // One receive stays posted across the attempts: a failed send leaves
  // nothing behind for the next one to trip over.
  auto receive =
      pair.receiver->PostRecv(pair.receiver_endpoint, kProbe, *pair.receive_buffer, 0, 8);
  if (!receive.ok()) return receive.status();
  absl::Status last;
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto send = pair.sender->Send(pair.sender_endpoint, pair.receiver_address, kProbe,
                                  *pair.send_buffer, 0, 8);
    if (!send.ok()) return send.status();
    auto sent = pair.sender->Wait(*send, kWaitMs);
    if (!sent.ok()) return sent.status();
    last = sent->status;
    if (last.ok()) return Check(pair.receiver->Wait(*receive, kWaitMs), "probe receive");
    if (last.code() != absl::StatusCode::kUnavailable) return last;
  }
  return absl::UnavailableError(absl::StrCat("the daemons did not connect: ", last.message()));
}

absl::StatusOr<Latency> PingPong(Pair& pair, size_t size, int iterations) {
  absl::Status echo_status;
  // The echo side: wait for a ping, answer with a pong of the same size.
  std::thread echo([&] {
    ::pthread_setname_np(::pthread_self(), "bench-echo");
    auto recv =
        pair.receiver->PostRecv(pair.receiver_endpoint, kPing, *pair.receive_buffer, 0, size);
    for (int i = 0; i < iterations && echo_status.ok(); ++i) {
      if (!recv.ok()) {
        echo_status = recv.status();
        return;
      }
      echo_status = Check(pair.receiver->Wait(*recv, kWaitMs), "echo receive");
      if (!echo_status.ok()) return;
      if (i + 1 < iterations) {
        recv =
            pair.receiver->PostRecv(pair.receiver_endpoint, kPing, *pair.receive_buffer, 0, size);
      }
      auto pong = pair.receiver->Send(pair.receiver_endpoint, pair.sender_address, kPong,
                                      *pair.receive_buffer, 0, size);
      if (!pong.ok()) {
        echo_status = pong.status();
        return;
      }
      echo_status = Check(pair.receiver->Wait(*pong, kWaitMs), "pong");
    }
  });
  std::vector<double> us;
  absl::Status status;
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    auto back = pair.sender->PostRecv(pair.sender_endpoint, kPong, *pair.send_buffer, 0, size);
    auto ping = pair.sender->Send(pair.sender_endpoint, pair.receiver_address, kPing,
                                  *pair.send_buffer, 0, size);
    if (!back.ok() || !ping.ok()) {
      status = !back.ok() ? back.status() : ping.status();
      break;
    }
    status = Check(pair.sender->Wait(*back, kWaitMs), "pong receive");
    if (!status.ok()) break;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 2);
    status = Check(pair.sender->Wait(*ping, kWaitMs), "ping");
    if (!status.ok()) break;
  }
  echo.join();
  if (!status.ok()) return status;
  if (!echo_status.ok()) return echo_status;
  std::sort(us.begin(), us.end());
  const auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())))];
  };
  return Latency{us.front(), at(0.5), at(0.99)};
}

absl::StatusOr<Stream> RunStreams(std::vector<Pair>& pairs, size_t size, int count, int window) {
  std::mutex mu;
  absl::Status status;
  auto fail = [&](const absl::Status& st) {
    std::lock_guard<std::mutex> lock(mu);
    if (status.ok()) status = st;
  };
  // `window` operations in flight, spread over at most 1 MiB of each side's
  // buffer (a slot each while they fit), and from 1 MiB on all on the same
  // bytes, as ucx_perftest does: the working set no longer depends on the
  // run's largest size. (Sized by it, 4 MiB beside 1 GiB took 16 slots of
  // 4 MiB a side, spilled the CPU caches that ucx_perftest's one buffer stays
  // in, and read 0.61-0.70 of it instead of 0.80-0.98 alone.)
  const size_t in_flight = static_cast<size_t>(std::max(1, window));
  const size_t slots =
      std::clamp<size_t>((size_t{1} << 20) / std::max<size_t>(size, 1), 1, in_flight);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (Pair& p : pairs) {
    threads.emplace_back([&, pp = &p] {  // receiver: keeps `in_flight` receives posted
      ::pthread_setname_np(::pthread_self(), "bench-recv");
      std::deque<Operation> posted;
      int next = 0, done = 0;
      while (done < count) {
        while (posted.size() < in_flight && next < count) {
          auto op = pp->receiver->PostRecv(pp->receiver_endpoint, kData, *pp->receive_buffer,
                                           (static_cast<size_t>(next) % slots) * size, size);
          if (!op.ok()) return fail(op.status());
          posted.push_back(*op);
          ++next;
        }
        if (auto st = Check(pp->receiver->Wait(posted.front(), kWaitMs), "stream receive");
            !st.ok()) {
          return fail(st);
        }
        posted.pop_front();
        ++done;
      }
    });
    threads.emplace_back([&, pp = &p] {  // sender: keeps `in_flight` sends in flight
      ::pthread_setname_np(::pthread_self(), "bench-send");
      std::deque<Operation> sent;
      for (int i = 0; i < count; ++i) {
        if (sent.size() == in_flight) {
          if (auto st = Check(pp->sender->Wait(sent.front(), kWaitMs), "stream send"); !st.ok()) {
            return fail(st);
          }
          sent.pop_front();
        }
        auto op = pp->sender->Send(pp->sender_endpoint, pp->receiver_address, kData,
                                   *pp->send_buffer, (static_cast<size_t>(i) % slots) * size, size);
        if (!op.ok()) return fail(op.status());
        sent.push_back(*op);
      }
      for (auto op : sent) {
        if (auto st = Check(pp->sender->Wait(op, kWaitMs), "stream send"); !st.ok())
          return fail(st);
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!status.ok()) return status;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double messages = static_cast<double>(count) * static_cast<double>(pairs.size());
  return Stream{messages / seconds, messages * static_cast<double>(size) / seconds / 1e9};
}

}  // namespace axon::bench
