// Test support: a real etcd server (Debian's etcd-server) on loopback ports,
// with its data in a temporary directory, that a test can stop, kill, pause
// and start again on the same data.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "tests/support/process.h"

namespace axon::testing {

// Where etcd is: $AXON_ETCD, else /usr/bin/etcd; "" when neither exists.
std::string EtcdPath();

class Etcd {
 public:
  // etcd with its data under dir/etcd-data, its client URL on
  // 127.0.0.1:client_port, its peer URL on peer_port and /health (plain
  // HTTP) on metrics_port; Start starts it.
  Etcd(const TempDir& dir, int client_port, int peer_port, int metrics_port);
  ~Etcd();  // kills it
  Etcd(const Etcd&) = delete;
  Etcd& operator=(const Etcd&) = delete;

  // "127.0.0.1:PORT", as axond's etcd.endpoints takes it.
  std::string endpoint() const;
  // Clients must speak TLS, to a server with this certificate and key (PEM
  // files); before Start.
  void UseTls(std::string cert_file, std::string key_file) {
    cert_ = std::move(cert_file);
    key_ = std::move(key_file);
  }
  bool running();
  // Starts it (again, on the same data) and waits until it has a leader
  // (its /health says so). Stop: SIGTERM, and waits for it to exit.
  void Start();
  void Stop();
  void Pause();   // SIGSTOP
  void Resume();  // SIGCONT
  std::string Log() const;

 private:
  bool WaitReady(std::chrono::milliseconds timeout);

  const TempDir& dir_;
  int client_port_, peer_port_, metrics_port_;
  std::string cert_, key_;
  std::unique_ptr<Child> child_;
};

}  // namespace axon::testing
