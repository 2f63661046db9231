#include "daemon/membership/membership.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace axon::daemon {

absl::StatusOr<std::unique_ptr<Membership>> Membership::Start(MembershipOptions options,
                                                              OnChange on_change) {
  auto client = rpc::EtcdClient::Create(options.etcd);
  if (!client.ok()) return client.status();
  std::unique_ptr<Membership> m(
      new Membership(std::move(options), std::move(on_change), *std::move(client)));
  m->registrar_ = std::thread([raw = m.get()] { raw->Register(); });
  m->watcher_ = std::thread([raw = m.get()] { raw->WatchMembers(); });
  return m;
}

Membership::Membership(MembershipOptions options, OnChange on_change,
                       std::unique_ptr<rpc::EtcdClient> client)
    : options_(std::move(options)),
      key_(MemberTable::KeyOf(options_.prefix, options_.self.name)),
      on_change_(std::move(on_change)),
      client_(std::move(client)),
      table_(options_.prefix, options_.self.name) {}

Membership::~Membership() {
  int64_t lease = 0;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  stop_.notify_all();
  registrar_.join();
  watcher_.join();
  {
    MutexLock lock(&mu_);
    lease = lease_;
  }
  if (lease == 0) return;
  // The record goes first, so the others see this node leave at once; the
  // lease with it (or with its TTL, if etcd is away now).
  // One attempt, within a second: a daemon stopping while etcd is away
  // leaves its record to the lease.
  constexpr absl::Duration kLeaveTimeout = absl::Seconds(1);
  if (auto st = client_->Delete(key_, kLeaveTimeout); !st.ok()) {
    spdlog::warn("membership: could not delete this node's record ({}); it goes with its lease",
                 st.message());
    return;
  }
  (void)client_->RevokeLease(lease, kLeaveTimeout);
  spdlog::info("membership: left (record {} deleted)", key_);
}

Membership::State Membership::state() const {
  MutexLock lock(&mu_);
  return state_;
}

std::vector<MemberTable::Entry> Membership::members() const {
  MutexLock lock(&mu_);
  return table_.Snapshot();
}

bool Membership::Sleep(absl::Duration d) {
  MutexLock lock(&mu_);
  const auto until = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(d);
  while (!stopping_ && stop_.wait_until(mu_, until) != std::cv_status::timeout) {
  }
  return !stopping_;
}

void Membership::Failed(const absl::Status& why) {
  MutexLock lock(&mu_);
  if (state_.last_error.empty()) {
    state_.error_since = absl::Now();
    spdlog::warn("membership: {} (retrying)", why.message());
  }
  state_.last_error = std::string(why.message());
}

void Membership::MaybeHealthy() {
  if (state_.registered && state_.watching && !state_.last_error.empty()) {
    state_.last_error.clear();
    spdlog::info("membership: registered and watching again");
  }
}

absl::Duration Membership::Backoff(absl::Duration& backoff) const {
  const absl::Duration now = backoff;
  backoff = std::min(backoff * 2, options_.retry_max);
  return now;
}

void Membership::Register() {
  const std::string record = EncodeMember(options_.self);
  absl::Duration backoff = options_.retry_min;
  int64_t lease = 0;
  for (;;) {
    absl::Status st;
    if (lease == 0) {
      auto granted = client_->GrantLease(options_.ttl, options_.call_timeout);
      if (granted.ok()) {
        st = Claim(record, *granted);
        if (st.ok()) {
          lease = *granted;
          MutexLock lock(&mu_);
          lease_ = lease;
          state_.registered = true;
          MaybeHealthy();
          spdlog::info("membership: registered as {} (lease {:x}, ttl {}s)", key_, lease,
                       absl::ToInt64Seconds(options_.ttl));
        } else {
          (void)client_->RevokeLease(*granted, options_.call_timeout);
        }
      } else {
        st = granted.status();
      }
    } else {
      auto left = client_->RenewLease(lease, options_.call_timeout);
      if (left.ok()) {
        MutexLock lock(&mu_);
        MaybeHealthy();
      } else {
        st = left.status();
        if (st.code() == absl::StatusCode::kNotFound) {
          lease = 0;  // expired while etcd was away: register again at once
          MutexLock lock(&mu_);
          state_.registered = false;
          lease_ = 0;
        }
      }
    }
    if (st.ok()) {
      backoff = options_.retry_min;
      if (!Sleep(options_.ttl / 3)) return;
      continue;
    }
    Failed(st);
    if (st.code() == absl::StatusCode::kNotFound) continue;
    if (st.code() == absl::StatusCode::kAlreadyExists) {
      if (!Sleep(options_.retry_max)) return;
      continue;
    }
    if (!Sleep(Backoff(backoff))) return;
  }
}

absl::Status Membership::Claim(const std::string& record, int64_t lease) {
  auto held = client_->PutIfAbsent(key_, record, lease, options_.call_timeout);
  if (!held.ok()) return held.status();
  if (held->has_value()) {
    // Ours from before (a restart: this daemon holds the address now, so the
    // one that wrote it is gone), or another daemon's.
    auto other = DecodeMember(**held);
    const bool ours = !other.ok() || other->address == options_.self.address ||
                      other->incarnation == options_.self.incarnation;
    if (!ours) {
      const std::string why =
          absl::StrCat("node name '", options_.self.name, "' is taken by the daemon at ",
                       other->address, " (incarnation ", absl::Hex(other->incarnation),
                       "): this one does not join until it leaves");
      {
        MutexLock lock(&mu_);
        if (state_.conflict.empty()) spdlog::error("membership: {}", why);
        state_.conflict = why;
      }
      return absl::AlreadyExistsError(why);
    }
    if (auto st = client_->Put(key_, record, lease, options_.call_timeout); !st.ok()) return st;
  }
  MutexLock lock(&mu_);
  state_.conflict.clear();
  return absl::OkStatus();
}

void Membership::WatchMembers() {
  absl::Duration backoff = options_.retry_min;
  auto report = [this](std::vector<MemberTable::Change> changes) {
    for (const MemberTable::Change& c : changes) on_change_(c);
  };
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    auto read = client_->GetPrefix(MemberTable::KeyOf(options_.prefix, ""), options_.call_timeout);
    if (!read.ok()) {
      Failed(read.status());
      if (!Sleep(Backoff(backoff))) return;
      continue;
    }
    std::vector<std::pair<std::string, std::string>> kvs;
    for (auto& kv : read->first) kvs.emplace_back(std::move(kv.key), std::move(kv.value));
    std::vector<MemberTable::Change> changes;
    {
      MutexLock lock(&mu_);
      changes = table_.Replace(kvs, absl::Now());
    }
    report(std::move(changes));
    auto watch = client_->WatchPrefix(MemberTable::KeyOf(options_.prefix, ""), read->second + 1);
    if (!watch.ok()) {
      Failed(watch.status());
      if (!Sleep(Backoff(backoff))) return;
      continue;
    }
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      watch_ = watch->get();
      state_.watching = true;
      MaybeHealthy();
    }
    backoff = options_.retry_min;
    absl::Status ended;
    for (;;) {
      auto events = (*watch)->Next();
      if (!events.ok()) {
        ended = events.status();
        break;
      }
      const absl::Time now = absl::Now();
      {
        MutexLock lock(&mu_);
        for (const rpc::EtcdEvent& e : *events) {
          auto c = e.deleted ? table_.Delete(e.kv.key) : table_.Put(e.kv.key, e.kv.value, now);
          changes.insert(changes.end(), c.begin(), c.end());
        }
      }
      report(std::exchange(changes, {}));
    }
    {
      MutexLock lock(&mu_);
      watch_ = nullptr;
      state_.watching = false;
      if (stopping_) return;
    }
    Failed(ended);
    if (!Sleep(Backoff(backoff))) return;
  }
}

}  // namespace axon::daemon
