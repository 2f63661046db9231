// Membership through etcd (peers.discovery: etcd). Two threads of its own:
//
// - the registrar grants a lease of `ttl`, writes this node's record under
//   `<prefix>nodes/<name>` bound to it, and renews it every ttl/3; a lease
//   that expired anyway (etcd was away longer than the TTL) is granted again
//   and the record written again;
// - the watcher reads the prefix, reports what changed since its last read,
//   then watches from the revision after it; when the watch breaks it reads
//   again, so nothing missed while etcd was away is lost.
//
// Both retry with exponential backoff (retry_min..retry_max) and never give
// up: the daemon starts and serves without etcd, and catches up when it
// comes. Changes go to `on_change` on the watcher's thread. The destructor
// leaves cleanly: the record is deleted and the lease revoked, each within
// call_timeout, so the others see this node go at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "common/annotated_mutex.h"
#include "daemon/membership/member_table.h"
#include "daemon/rpc/etcd_client.h"

namespace axon::daemon {

struct MembershipOptions {
  rpc::EtcdOptions etcd;
  std::string prefix;  // ends in '/'
  absl::Duration ttl = absl::Seconds(10);
  absl::Duration retry_min = absl::Milliseconds(200);
  absl::Duration retry_max = absl::Seconds(10);
  absl::Duration call_timeout = absl::Seconds(2);
  Member self;
};

class Membership {
 public:
  using OnChange = std::function<void(const MemberTable::Change&)>;

  // Fails only on options that cannot work (bad endpoints, TLS files).
  static absl::StatusOr<std::unique_ptr<Membership>> Start(MembershipOptions options,
                                                           OnChange on_change);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  struct State {
    bool registered = false;  // this node's record is in etcd under a live lease
    bool watching = false;    // the watch is up to date
    std::string last_error;   // "" once both are fine again
    absl::Time error_since;   // when things last went wrong
    // Another running daemon holds this node's name: this one does not join
    // (it tries again every retry_max, in case that one leaves).
    std::string conflict;
  };
  State state() const;
  std::vector<MemberTable::Entry> members() const;
  const MembershipOptions& options() const { return options_; }

 private:
  Membership(MembershipOptions options, OnChange on_change,
             std::unique_ptr<rpc::EtcdClient> client);
  void Register();
  // Writes this node's record under `lease`, unless another daemon's is
  // there: OK when written, ALREADY_EXISTS (and state_.conflict) when not.
  absl::Status Claim(const std::string& record, int64_t lease);
  void WatchMembers();
  // Waits `d`, or less if stopping; false when stopping.
  bool Sleep(absl::Duration d);
  void Failed(const absl::Status& why);
  // Clears the error once registered and watching again.
  void MaybeHealthy() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(absl::Duration& backoff) const;

  const MembershipOptions options_;
  const std::string key_;
  const OnChange on_change_;
  std::unique_ptr<rpc::EtcdClient> client_;

  mutable Mutex mu_;
  std::condition_variable_any stop_;  // wakes Sleep when stopping
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  State state_ ABSL_GUARDED_BY(mu_);
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  rpc::EtcdClient::Watch* watch_ ABSL_GUARDED_BY(mu_) = nullptr;  // to cancel
  MemberTable table_ ABSL_GUARDED_BY(mu_);

  std::thread registrar_, watcher_;
};

}  // namespace axon::daemon
