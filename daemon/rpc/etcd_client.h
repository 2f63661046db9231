// EtcdClient: the part of etcd's v3 gRPC API that membership needs (leases,
// put, delete, a prefix read and a prefix watch), with TLS and user/password
// authentication. Blocking calls, each with its own deadline; any thread. A
// watch is an object of its own, read by one thread and cancellable from any.
//
// The channel reconnects by itself; a call made while etcd is away fails
// UNAVAILABLE or DEADLINE_EXCEEDED, and the caller retries (Membership).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace axon::daemon::rpc {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // "host:port"; several must be IP addresses
  // TLS when ca_file is set; cert_file and key_file for a client certificate.
  std::string ca_file, cert_file, key_file;
  std::string user, password;  // authentication when user is set
};

struct EtcdKeyValue {
  std::string key, value;
  int64_t lease = 0;
};

struct EtcdEvent {
  bool deleted = false;  // else put
  EtcdKeyValue kv;
};

class EtcdClient {
 public:
  class Watch;

  // Makes the channel; nothing is sent yet. Fails on bad options or
  // unreadable TLS files.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(EtcdOptions options);
  ~EtcdClient();

  // A lease of `ttl` (whole seconds, at least 1); its id.
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl, absl::Duration timeout);
  absl::Status RevokeLease(int64_t lease, absl::Duration timeout);
  absl::Status Put(const std::string& key, const std::string& value, int64_t lease,
                   absl::Duration timeout);
  // Writes `key` only if it does not exist (one transaction): nothing when
  // it did, else the value it holds.
  absl::StatusOr<std::optional<std::string>> PutIfAbsent(const std::string& key,
                                                         const std::string& value, int64_t lease,
                                                         absl::Duration timeout);
  absl::Status Delete(const std::string& key, absl::Duration timeout);
  // Every key under `prefix`, and the store's revision they were read at.
  absl::StatusOr<std::pair<std::vector<EtcdKeyValue>, int64_t>> GetPrefix(const std::string& prefix,
                                                                          absl::Duration timeout);

  // One keepalive of `lease` (a stream of its own, so that a silent etcd
  // cannot hold it past `timeout`): the lease's time left, or NOT_FOUND once
  // it expired.
  absl::StatusOr<absl::Duration> RenewLease(int64_t lease, absl::Duration timeout);
  // A watch of every key under `prefix`, from `revision` on.
  absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(const std::string& prefix, int64_t revision);

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class EtcdClient::Watch {
 public:
  struct Impl;
  explicit Watch(std::unique_ptr<Impl> impl);
  ~Watch();
  // The next batch of events; blocks until there is one, the stream fails
  // (its status; OUT_OF_RANGE when the revision was compacted away), or
  // Cancel (CANCELLED).
  absl::StatusOr<std::vector<EtcdEvent>> Next();
  void Cancel();

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace axon::daemon::rpc
