// axon-soak: a mixed load on two real daemons for a while, with clients
// coming and going and one killed every few seconds, while the daemons'
// resident memory, descriptors, threads and CPU are sampled. What it checks
// at the end: both daemons alive, no client error, and once every client is
// gone, each daemon back to its starting descriptors and sessions. It
// prints the curves as a table and writes them as JSON; RSS is reported,
// not judged (the table shows whether it is flat).
//
//   axon-soak --seconds 600 --json soak.json
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/soak/roles.h"
#include "client/axonctl/admin_client.h"
#include "client/tools/local_cluster.h"
#include "client/tools/spawn.h"
#include "common/process_info.h"

namespace axon::soak {
namespace {

struct Options {
  int seconds = 60;
  int clients = 4;
  int kill_every_ms = 3000;
  int sample_ms = 1000;
  std::string run_dir = "run/soak";
  std::string json;
  std::string axond;
};

struct Sample {
  double t = 0;
  ProcessUsage a, b;
};

struct Proc {
  std::string name, out;
  pid_t pid = -1;
};

using Clock = std::chrono::steady_clock;

absl::StatusOr<Proc> SpawnRole(const std::string& self, const std::string& role,
                               const std::string& name, const tools::LocalDaemon& on,
                               const tools::LocalCluster& cluster) {
  Proc p{name, absl::StrCat(cluster.run_dir(), "/", name, ".out")};
  auto pid = tools::SpawnWithOutput({self, "--role", role, "--socket", on.socket, "--name", name,
                                     "--node-a", cluster.a().name, "--node-b", cluster.b().name},
                                    {}, p.out, absl::StrCat(cluster.run_dir(), "/", name, ".err"));
  if (!pid.ok()) return pid.status();
  p.pid = *pid;
  return p;
}

void Reap(Proc& p, int sig) {
  if (p.pid <= 0) return;
  ::kill(p.pid, sig);
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  p.pid = -1;
}

struct Totals {
  uint64_t calls = 0, messages = 0, errors = 0;
  std::vector<std::string> last_errors;
};

// Adds the last counts line a role printed.
void AddCounts(const Proc& p, Totals& t) {
  std::ifstream in(p.out);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.rfind("calls ", 0) == 0) last = line;
  }
  std::vector<std::string> f = absl::StrSplit(last, absl::MaxSplits(' ', 7));
  if (f.size() < 8) return;
  uint64_t calls = 0, messages = 0, errors = 0;
  if (!absl::SimpleAtoi(f[1], &calls) || !absl::SimpleAtoi(f[3], &messages) ||
      !absl::SimpleAtoi(f[5], &errors)) {
    return;
  }
  t.calls += calls;
  t.messages += messages;
  t.errors += errors;
  if (errors > 0) t.last_errors.push_back(absl::StrCat(p.name, ": ", f[7]));
}

double Mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

// RSS growth over the second half of the run, MiB per minute (least squares).
double RssSlope(const std::vector<Sample>& s, bool a) {
  const size_t from = s.size() / 2;
  if (s.size() - from < 3) return 0;
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = from; i < s.size(); ++i) {
    const double x = s[i].t / 60, y = Mib((a ? s[i].a : s[i].b).resident_bytes);
    n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double d = n * sxx - sx * sx;
  return d == 0 ? 0 : (n * sxy - sx * sy) / d;
}

int Run(const Options& o, const std::string& self) {
  tools::LocalCluster cluster(o.run_dir, o.axond, {"log.level=warn"});
  if (auto st = cluster.Start("soak"); !st.ok()) {
    std::fprintf(stderr, "axon-soak: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  ctl::AdminClient admin_a(cluster.a().socket, std::chrono::seconds(5));
  ctl::AdminClient admin_b(cluster.b().socket, std::chrono::seconds(5));
  if (auto st = ctl::WaitForPeersUp(admin_a, admin_b); !st.ok()) {
    std::fprintf(stderr, "axon-soak: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  auto sample = [&](double t) -> absl::StatusOr<Sample> {
    auto a = UsageOf(cluster.a().pid);
    auto b = UsageOf(cluster.b().pid);
    if (!a.ok())
      return absl::UnavailableError(absl::StrCat("axond ", cluster.a().name, " is gone"));
    if (!b.ok())
      return absl::UnavailableError(absl::StrCat("axond ", cluster.b().name, " is gone"));
    return Sample{t, *a, *b};
  };
  auto sessions_left = [&]() -> int {
    for (int i = 0; i < 100; ++i) {
      auto la = admin_a.ListSessions();
      auto lb = admin_b.ListSessions();
      if (la.ok() && lb.ok() && la->sessions_size() + lb->sessions_size() == 0) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    auto la = admin_a.ListSessions();
    auto lb = admin_b.ListSessions();
    return la.ok() && lb.ok() ? la->sessions_size() + lb->sessions_size() : -1;
  };
  std::vector<Proc> servers, clients, gone;
  auto start_servers = [&]() -> bool {
    for (const auto& [name, daemon] : {std::pair{"srv-a", &cluster.a()}, {"srv-b", &cluster.b()}}) {
      auto p = SpawnRole(self, "server", name, *daemon, cluster);
      if (!p.ok()) return false;
      servers.push_back(*p);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // servers bind first
    return true;
  };
  // A short warm-up first, so that what a daemon makes once in its life
  // (its deadline timer, pools) is in the baseline the end is compared with.
  if (!start_servers()) return 2;
  {
    auto warm = SpawnRole(self, "client", "warm-up", cluster.a(), cluster);
    if (!warm.ok()) return 2;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    Reap(*warm, SIGKILL);
  }
  for (Proc& p : servers) Reap(p, SIGTERM);
  servers.clear();
  if (sessions_left() != 0) {
    std::fprintf(stderr, "axon-soak: sessions left after the warm-up\n");
    return 2;
  }
  auto baseline = sample(0);
  if (!baseline.ok()) return 2;
  if (!start_servers()) return 2;
  int next_client = 0;
  auto start_client = [&]() -> bool {
    const int k = next_client++;
    auto p =
        SpawnRole(self, "client", absl::StrCat("c", k), k % 2 ? cluster.b() : cluster.a(), cluster);
    if (p.ok()) clients.push_back(*p);
    return p.ok();
  };
  for (int i = 0; i < o.clients; ++i) start_client();

  std::vector<Sample> samples;
  std::mt19937 random(42);
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::seconds(o.seconds);
  auto next_sample = t0;
  auto next_kill = t0 + std::chrono::milliseconds(o.kill_every_ms);
  int kills = 0;
  std::string failure;
  while (Clock::now() < end && failure.empty()) {
    const auto now = Clock::now();
    if (now >= next_sample) {
      auto s = sample(std::chrono::duration<double>(now - t0).count());
      if (!s.ok()) {
        failure = std::string(s.status().message());
        break;
      }
      samples.push_back(*s);
      next_sample += std::chrono::milliseconds(o.sample_ms);
    }
    if (now >= next_kill && !clients.empty()) {
      // One client killed, a new one started: clients coming and going.
      const size_t victim = random() % clients.size();
      Reap(clients[victim], SIGKILL);
      gone.push_back(clients[victim]);
      clients.erase(clients.begin() + static_cast<long>(victim));
      ++kills;
      start_client();
      next_kill += std::chrono::milliseconds(o.kill_every_ms);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (Proc& p : clients) Reap(p, SIGKILL);
  for (Proc& p : servers) Reap(p, SIGTERM);
  gone.insert(gone.end(), clients.begin(), clients.end());

  // Every client gone: the daemons give everything back.
  const int left = sessions_left();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto after = sample(std::chrono::duration<double>(Clock::now() - t0).count());
  if (!after.ok() && failure.empty()) failure = std::string(after.status().message());

  Totals totals, served;
  for (const Proc& p : gone) AddCounts(p, totals);
  for (const Proc& p : servers) AddCounts(p, served);

  // The table: about ten rows of the curves.
  std::printf("axon-soak: %d s, %d clients, one killed every %d ms (%d killed), run dir %s\n",
              o.seconds, o.clients, o.kill_every_ms, kills, o.run_dir.c_str());
  std::printf("%8s | %9s %6s %7s %6s | %9s %6s %7s %6s\n", "t (s)", "a RSS MiB", "a fds", "a thr",
              "a cpu%", "b RSS MiB", "b fds", "b thr", "b cpu%");
  const size_t step = std::max<size_t>(1, samples.size() / 10);
  for (size_t i = 0; i < samples.size(); i += step) {
    const Sample& s = samples[i];
    const Sample& prev = samples[i == 0 ? 0 : i - step];
    const double dt = std::max(1e-9, s.t - prev.t);
    std::printf(
        "%8.1f | %9.1f %6llu %7llu %6.0f | %9.1f %6llu %7llu %6.0f\n", s.t, Mib(s.a.resident_bytes),
        static_cast<unsigned long long>(s.a.open_fds), static_cast<unsigned long long>(s.a.threads),
        i == 0 ? 0 : 100 * (s.a.cpu_seconds - prev.a.cpu_seconds) / dt, Mib(s.b.resident_bytes),
        static_cast<unsigned long long>(s.b.open_fds), static_cast<unsigned long long>(s.b.threads),
        i == 0 ? 0 : 100 * (s.b.cpu_seconds - prev.b.cpu_seconds) / dt);
  }
  const double slope_a = RssSlope(samples, true), slope_b = RssSlope(samples, false);
  std::printf(
      "calls %llu, messages %llu (clients); served %llu calls, sank %llu messages; "
      "client errors %llu\n",
      static_cast<unsigned long long>(totals.calls),
      static_cast<unsigned long long>(totals.messages),
      static_cast<unsigned long long>(served.calls),
      static_cast<unsigned long long>(served.messages),
      static_cast<unsigned long long>(totals.errors + served.errors));
  for (const auto& e : totals.last_errors) std::printf("  error: %s\n", e.c_str());
  for (const auto& e : served.last_errors) std::printf("  error: %s\n", e.c_str());
  if (after.ok()) {
    std::printf("RSS growth, second half: a %.2f MiB/min, b %.2f MiB/min\n", slope_a, slope_b);
    std::printf(
        "after every client left: fds a %llu (start %llu), b %llu (start %llu); "
        "threads a %llu (start %llu), b %llu (start %llu); sessions %d\n",
        static_cast<unsigned long long>(after->a.open_fds),
        static_cast<unsigned long long>(baseline->a.open_fds),
        static_cast<unsigned long long>(after->b.open_fds),
        static_cast<unsigned long long>(baseline->b.open_fds),
        static_cast<unsigned long long>(after->a.threads),
        static_cast<unsigned long long>(baseline->a.threads),
        static_cast<unsigned long long>(after->b.threads),
        static_cast<unsigned long long>(baseline->b.threads), left);
    if (after->a.open_fds != baseline->a.open_fds || after->b.open_fds != baseline->b.open_fds) {
      failure = "a daemon did not return to its starting file descriptors";
    }
    if (left != 0) failure = "sessions were left behind";
  }
  if (totals.errors + served.errors > 0 && failure.empty()) failure = "clients saw errors";
  if (totals.calls == 0 && failure.empty()) failure = "no call completed";

  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << "{\"seconds\": " << o.seconds << ", \"clients\": " << o.clients
        << ", \"kill_every_ms\": " << o.kill_every_ms << ", \"killed\": " << kills
        << ", \"calls\": " << totals.calls << ", \"messages\": " << totals.messages
        << ", \"errors\": " << totals.errors + served.errors
        << absl::StrFormat(", \"rss_slope_mib_per_min\": [%.3f, %.3f]", slope_a, slope_b)
        << ", \"ok\": " << (failure.empty() ? "true" : "false") << ", \"samples\": [";
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& s = samples[i];
      out << (i ? ", " : "")
          << absl::StrFormat(
                 "{\"t\": %.2f, \"a\": {\"rss\": %d, \"fds\": %d, \"threads\": %d, \"cpu_s\": "
                 "%.2f}, \"b\": {\"rss\": %d, \"fds\": %d, \"threads\": %d, \"cpu_s\": %.2f}}",
                 s.t, s.a.resident_bytes, s.a.open_fds, s.a.threads, s.a.cpu_seconds,
                 s.b.resident_bytes, s.b.open_fds, s.b.threads, s.b.cpu_seconds);
    }
    out << "]}\n";
  }
  if (!failure.empty()) {
    std::printf("axon-soak: FAILED: %s (logs in %s)\n", failure.c_str(), o.run_dir.c_str());
    return 1;
  }
  std::printf("axon-soak: ok\n");
  return 0;
}

}  // namespace
}  // namespace axon::soak

int main(int argc, char** argv) {
  CLI::App app("axon-soak: a mixed load on two daemons, clients killed as it runs");
  axon::soak::Options o;
  std::string role;
  axon::soak::RoleOptions r;
  app.add_option("--seconds", o.seconds, "how long the load runs")->check(CLI::Range(1, 86400));
  app.add_option("--clients", o.clients, "client processes at any time")->check(CLI::Range(1, 64));
  app.add_option("--kill-every-ms", o.kill_every_ms, "a client is killed (and replaced) this often")
      ->check(CLI::Range(100, 3600000));
  app.add_option("--sample-ms", o.sample_ms, "how often the daemons are sampled")
      ->check(CLI::Range(50, 60000));
  app.add_option("--run-dir", o.run_dir, "sockets, logs and the roles' output");
  app.add_option("--json", o.json, "write the samples and totals here");
  app.add_option("--axond", o.axond, "the daemon binary (default: the build's)");
  app.add_option("--role", role, "internal: run as a server or client process")
      ->check(CLI::IsMember({"server", "client"}));
  app.add_option("--socket", r.socket, "internal");
  app.add_option("--name", r.name, "internal");
  app.add_option("--node-a", r.node_a, "internal");
  app.add_option("--node-b", r.node_b, "internal");
  CLI11_PARSE(app, argc, argv);
  if (role == "server") return axon::soak::RunServer(r);
  if (role == "client") return axon::soak::RunClient(r);
  char self[4096] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return 2;
  return axon::soak::Run(o, std::string(self, static_cast<size_t>(n)));
}
