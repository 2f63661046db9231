#include "daemon/rpc/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/annotated_mutex.h"
#include "common/net_address.h"
#include "common/rpc/status_convert.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace axon::daemon::rpc {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("etcd: cannot read ", what, " ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// etcd's convention for "every key with this prefix": the end of the range is
// the prefix with its last byte incremented.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) < 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// One target for the channel: a single endpoint as given (DNS names work),
// several as a list of addresses that gRPC balances over.
absl::StatusOr<std::string> Target(const std::vector<std::string>& endpoints) {
  if (endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  if (endpoints.size() == 1) return endpoints.front();
  std::vector<std::string> v4, v6;
  for (const std::string& e : endpoints) {
    auto address = ParseSocketAddress(e);
    if (!address.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd: with several endpoints each must be an IP address and port; '", e, "' is not"));
    }
    (e.front() == '[' ? v6 : v4).push_back(e);
  }
  if (!v4.empty() && !v6.empty()) {
    return absl::InvalidArgumentError("etcd: endpoints must be all IPv4 or all IPv6");
  }
  return v4.empty() ? absl::StrCat("ipv6:", absl::StrJoin(v6, ","))
                    : absl::StrCat("ipv4:", absl::StrJoin(v4, ","));
}

}  // namespace

struct EtcdClient::Impl {
  EtcdOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  Mutex mu;
  std::string token ABSL_GUARDED_BY(mu);  // empty: not authenticated (yet)

  // A context with `timeout` and the auth token; null when authentication
  // is needed and failed (*status says why).
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout, absl::Status* status) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (timeout != absl::InfiniteDuration()) {
      context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    }
    if (!options.user.empty()) {
      auto token = Token(timeout);
      if (!token.ok()) {
        *status = token.status();
        return nullptr;
      }
      context->AddMetadata("token", *token);
    }
    return context;
  }

  absl::StatusOr<std::string> Token(absl::Duration timeout) {
    {
      MutexLock lock(&mu);
      if (!token.empty()) return token;
    }
    etcdserverpb::AuthenticateRequest request;
    request.set_name(options.user);
    request.set_password(options.password);
    etcdserverpb::AuthenticateResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    grpc::Status st = auth->Authenticate(&context, request, &response);
    if (!st.ok()) {
      absl::Status why = axon::rpc::FromGrpcStatus(st);
      return absl::Status(why.code(), absl::StrCat("etcd: authenticating as '", options.user,
                                                   "': ", why.message()));
    }
    MutexLock lock(&mu);
    token = response.token();
    return token;
  }

  // etcd answers a call with an expired or unknown token this way; the
  // next call authenticates again.
  absl::Status Finish(const grpc::Status& st, const char* what) {
    if (st.ok()) return absl::OkStatus();
    if (st.error_message().find("auth token") != std::string::npos ||
        st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      MutexLock lock(&mu);
      token.clear();
    }
    absl::Status why = axon::rpc::FromGrpcStatus(st);
    return absl::Status(why.code(), absl::StrCat("etcd ", what, ": ", why.message()));
  }

  // Runs a unary call, once more if the token had expired.
  template <typename Call>
  absl::Status Unary(const char* what, absl::Duration timeout, Call call) {
    absl::Status last;
    for (int attempt = 0; attempt < 2; ++attempt) {
      absl::Status made;
      auto context = Context(timeout, &made);
      if (!context) return made;
      last = Finish(call(context.get()), what);
      if (last.ok() || options.user.empty() || last.code() != absl::StatusCode::kUnauthenticated) {
        break;
      }
    }
    return last;
  }
};

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(EtcdOptions options) {
  auto target = Target(options.endpoints);
  if (!target.ok()) return target.status();
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.ca_file.empty()) {
    if (!options.cert_file.empty()) {
      return absl::InvalidArgumentError("etcd: a client certificate needs ca_file (TLS)");
    }
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions tls;
    auto ca = ReadFile(options.ca_file, "ca_file");
    if (!ca.ok()) return ca.status();
    tls.pem_root_certs = *std::move(ca);
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError("etcd: cert_file and key_file go together");
    }
    if (!options.cert_file.empty()) {
      auto cert = ReadFile(options.cert_file, "cert_file");
      if (!cert.ok()) return cert.status();
      auto key = ReadFile(options.key_file, "key_file");
      if (!key.ok()) return key.status();
      tls.pem_cert_chain = *std::move(cert);
      tls.pem_private_key = *std::move(key);
    }
    credentials = grpc::SslCredentials(tls);
  }
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  // A paused or partitioned etcd is noticed by the calls' deadlines; these
  // keep an idle channel from holding a dead connection for long.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->channel = grpc::CreateCustomChannel(*target, credentials, args);
  impl->kv = etcdserverpb::KV::NewStub(impl->channel);
  impl->lease = etcdserverpb::Lease::NewStub(impl->channel);
  impl->watch = etcdserverpb::Watch::NewStub(impl->channel);
  impl->auth = etcdserverpb::Auth::NewStub(impl->channel);
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(absl::Duration ttl, absl::Duration timeout) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(ttl)));
  etcdserverpb::LeaseGrantResponse response;
  auto st = impl_->Unary("lease grant", timeout, [&](grpc::ClientContext* c) {
    return impl_->lease->LeaseGrant(c, request, &response);
  });
  if (!st.ok()) return st;
  if (!response.error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd lease grant: ", response.error()));
  }
  return response.id();
}

absl::Status EtcdClient::RevokeLease(int64_t lease, absl::Duration timeout) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  return impl_->Unary("lease revoke", timeout, [&](grpc::ClientContext* c) {
    return impl_->lease->LeaseRevoke(c, request, &response);
  });
}

absl::Status EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease,
                             absl::Duration timeout) {
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  request.set_lease(lease);
  etcdserverpb::PutResponse response;
  return impl_->Unary("put", timeout, [&](grpc::ClientContext* c) {
    return impl_->kv->Put(c, request, &response);
  });
}

absl::StatusOr<std::optional<std::string>> EtcdClient::PutIfAbsent(const std::string& key,
                                                                   const std::string& value,
                                                                   int64_t lease,
                                                                   absl::Duration timeout) {
  etcdserverpb::TxnRequest request;
  auto* absent = request.add_compare();
  absent->set_key(key);
  absent->set_target(etcdserverpb::Compare::CREATE);
  absent->set_result(etcdserverpb::Compare::EQUAL);
  absent->set_create_revision(0);
  auto* put = request.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  request.add_failure()->mutable_request_range()->set_key(key);
  etcdserverpb::TxnResponse response;
  auto st = impl_->Unary("txn", timeout, [&](grpc::ClientContext* c) {
    return impl_->kv->Txn(c, request, &response);
  });
  if (!st.ok()) return st;
  if (response.succeeded()) return std::optional<std::string>();
  if (response.responses_size() == 1 && response.responses(0).response_range().kvs_size() == 1) {
    return std::optional<std::string>(response.responses(0).response_range().kvs(0).value());
  }
  return std::optional<std::string>(std::string());  // gone again meanwhile: held by nobody
}

absl::Status EtcdClient::Delete(const std::string& key, absl::Duration timeout) {
  etcdserverpb::DeleteRangeRequest request;
  request.set_key(key);
  etcdserverpb::DeleteRangeResponse response;
  return impl_->Unary("delete", timeout, [&](grpc::ClientContext* c) {
    return impl_->kv->DeleteRange(c, request, &response);
  });
}

absl::StatusOr<std::pair<std::vector<EtcdKeyValue>, int64_t>> EtcdClient::GetPrefix(
    const std::string& prefix, absl::Duration timeout) {
  etcdserverpb::RangeRequest request;
  request.set_key(prefix);
  request.set_range_end(PrefixEnd(prefix));
  etcdserverpb::RangeResponse response;
  auto st = impl_->Unary("range", timeout, [&](grpc::ClientContext* c) {
    return impl_->kv->Range(c, request, &response);
  });
  if (!st.ok()) return st;
  std::vector<EtcdKeyValue> out;
  out.reserve(response.kvs_size());
  for (const auto& kv : response.kvs()) out.push_back({kv.key(), kv.value(), kv.lease()});
  return std::make_pair(std::move(out), response.header().revision());
}

absl::StatusOr<absl::Duration> EtcdClient::RenewLease(int64_t lease, absl::Duration timeout) {
  absl::Status made;
  auto context = impl_->Context(timeout, &made);
  if (!context) return made;
  auto stream = impl_->lease->LeaseKeepAlive(context.get());
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse response;
  const bool sent = stream->Write(request);
  const bool got = sent && stream->Read(&response);
  stream->WritesDone();
  grpc::Status st = stream->Finish();
  if (!got) {
    if (st.ok()) st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream closed");
    return impl_->Finish(st, "lease keepalive");
  }
  if (response.ttl() <= 0) {
    return absl::NotFoundError(absl::StrCat("etcd: lease ", lease, " expired"));
  }
  return absl::Seconds(response.ttl());
}

struct EtcdClient::Watch::Impl {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream;
  EtcdClient::Impl* client = nullptr;
  bool finished = false;  // Finish was called: gRPC allows it once
};

absl::StatusOr<std::unique_ptr<EtcdClient::Watch>> EtcdClient::WatchPrefix(
    const std::string& prefix, int64_t revision) {
  auto w = std::make_unique<Watch::Impl>();
  absl::Status made;
  w->context = impl_->Context(absl::InfiniteDuration(), &made);
  if (!w->context) return made;
  w->client = impl_.get();
  w->stream = impl_->watch->Watch(w->context.get());
  etcdserverpb::WatchRequest request;
  auto* create = request.mutable_create_request();
  create->set_key(prefix);
  create->set_range_end(PrefixEnd(prefix));
  create->set_start_revision(revision);
  if (!w->stream->Write(request)) {
    w->finished = true;
    return impl_->Finish(w->stream->Finish(), "watch");
  }
  return std::make_unique<Watch>(std::move(w));
}

EtcdClient::Watch::Watch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EtcdClient::Watch::~Watch() {
  if (impl_->finished) return;
  impl_->context->TryCancel();
  etcdserverpb::WatchResponse drained;
  while (impl_->stream->Read(&drained)) {
  }
  (void)impl_->stream->Finish();
}

void EtcdClient::Watch::Cancel() { impl_->context->TryCancel(); }

absl::StatusOr<std::vector<EtcdEvent>> EtcdClient::Watch::Next() {
  if (impl_->finished) return absl::FailedPreconditionError("etcd watch: already ended");
  etcdserverpb::WatchResponse response;
  while (impl_->stream->Read(&response)) {
    if (response.compact_revision() != 0) {
      return absl::OutOfRangeError(absl::StrCat("etcd watch: revision compacted away (now from ",
                                                response.compact_revision(), ")"));
    }
    if (response.canceled()) {
      return absl::UnavailableError(
          absl::StrCat("etcd watch canceled by the server: ", response.cancel_reason()));
    }
    if (response.events_size() == 0) continue;  // created, or progress
    std::vector<EtcdEvent> out;
    out.reserve(response.events_size());
    for (const auto& e : response.events()) {
      out.push_back(
          {e.type() == mvccpb::Event::DELETE, {e.kv().key(), e.kv().value(), e.kv().lease()}});
    }
    return out;
  }
  impl_->finished = true;
  grpc::Status st = impl_->stream->Finish();
  if (st.ok()) st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the watch stream closed");
  return impl_->client->Finish(st, "watch");
}

}  // namespace axon::daemon::rpc
