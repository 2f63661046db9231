// A peer daemon of the test's own, on real UCX: it dials a real axond's
// listener under a node name the daemon knows (or listens, and refuses the
// daemons that dial it), and speaks the handshake and
// the message path one step at a time, when the test says. So a test can
// put frames where a real daemon never would on purpose: a Hello under
// another wire version, data frames before the hello-auth.
//
// No token: the proofs are empty, as in a cluster without peers.token.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net_address.h"
#include "common/wire/data.h"
#include "common/wire/handshake.h"
#include "common/wire/header.h"
#include "daemon/ucx/endpoint.h"
#include "daemon/ucx/listener.h"
#include "daemon/ucx/loop.h"

namespace axon::testing {

class FakePeer {
 public:
  struct Received {
    wire::MessageType type;
    std::vector<uint8_t> body;
  };

  static absl::StatusOr<std::unique_ptr<FakePeer>> Start(std::string node_name) {
    auto loop = ucx::Loop::Start({.transports = "tcp"});
    if (!loop.ok()) return loop.status();
    std::unique_ptr<FakePeer> peer(new FakePeer(std::move(node_name), *std::move(loop)));
    auto st = peer->OnLoop([&]() -> absl::Status {
      for (ucx::Worker* w :
           {&peer->loop_->ControlWorkerFromLoop(), &peer->loop_->DataWorkerFromLoop()}) {
        if (auto set = w->SetAmHandler(kAmId, [p = peer.get()](ucx::AmMessage& m) { p->Keep(m); });
            !set.ok()) {
          return set;
        }
      }
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return peer;
  }

  ~FakePeer() {
    (void)OnLoop([&] {
      data_.reset();
      control_.reset();
      accepted_.clear();
      listener_.reset();
      return absl::OkStatus();
    });
  }

  // Listens on 127.0.0.1 (a free port) for daemons that dial this node, and
  // answers each hello with a reject giving `reason`, leaving the connection
  // open. Returns the address, "127.0.0.1:port".
  absl::StatusOr<std::string> ListenAndReject(std::string reason) {
    auto any = ParseSocketAddress("127.0.0.1:0");
    if (!any.ok()) return any.status();
    std::string bound;
    auto st = OnLoop([&]() -> absl::Status {
      reject_with_ = std::move(reason);
      auto listener = ucx::Listener::Create(
          loop_->ControlWorkerFromLoop(), *any, [this](ucx::ConnectionRequest request) {
            auto ep = ucx::Endpoint::Accept(loop_->ControlWorkerFromLoop(), request,
                                            [](const absl::Status&) {});
            if (ep.ok()) accepted_.push_back(*std::move(ep));
          });
      if (!listener.ok()) return listener.status();
      listener_ = *std::move(listener);
      bound = listener_->address().ToString();
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return bound;
  }

  // Connects to `address` ("ip:port") and sends its Hello, under wire
  // version `version`.
  absl::Status Dial(const std::string& address, uint16_t version = wire::kVersion) {
    auto parsed = ParseSocketAddress(address);
    if (!parsed.ok()) return parsed.status();
    auto nonce = wire::RandomNonce();
    if (!nonce.ok()) return nonce.status();
    nonce_ = *nonce;
    return OnLoop([&]() -> absl::Status {
      auto ep = ucx::Endpoint::Connect(loop_->ControlWorkerFromLoop(), *parsed,
                                       [](const absl::Status&) {});
      if (!ep.ok()) return ep.status();
      control_ = *std::move(ep);
      auto worker_address = loop_->DataWorkerFromLoop().Address();
      if (!worker_address.ok()) return worker_address.status();
      const wire::Hello hello{
          .node_name = name_, .nonce = nonce_, .worker_address = *std::move(worker_address)};
      control_->SendAm(kAmId,
                       wire::Encode({.version = version, .type = wire::MessageType::kHello},
                                    wire::EncodeHello(hello)),
                       {}, nullptr);
      return absl::OkStatus();
    });
  }

  // The first message of type `type` received, waiting up to `timeout`.
  absl::StatusOr<Received> Await(wire::MessageType type, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const Received& r : received_) {
          if (r.type == type) return r;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return absl::DeadlineExceededError(absl::StrCat("no ", wire::MessageTypeName(type)));
  }

  // Connects the data endpoint to the acceptor's worker address (from its
  // Hello) and binds it with the acceptor's nonce.
  absl::Status BindData(const wire::Hello& theirs) {
    their_nonce_ = theirs.nonce;
    return OnLoop([&]() -> absl::Status {
      auto ep = ucx::Endpoint::ConnectToWorker(loop_->DataWorkerFromLoop(), theirs.worker_address,
                                               [](const absl::Status&) {});
      if (!ep.ok()) return ep.status();
      data_ = *std::move(ep);
      data_->SendAm(kAmId, wire::Encode({.type = wire::MessageType::kDataBind}, their_nonce_), {},
                    nullptr);
      return absl::OkStatus();
    });
  }

  // A kData frame with `payload`, on the data endpoint.
  absl::Status SendData(const wire::DataBody& body, std::vector<uint8_t> payload, uint64_t sequence,
                        ucx::AmProtocol protocol) {
    return OnLoop([&]() -> absl::Status {
      auto bytes = std::make_shared<std::vector<uint8_t>>(std::move(payload));
      const wire::Header header{
          .type = wire::MessageType::kData, .payload_length = bytes->size(), .sequence = sequence};
      data_->SendAmFrom(kAmId, wire::Encode(header, wire::EncodeData(body)), *bytes, bytes,
                        protocol, nullptr);
      return absl::OkStatus();
    });
  }

  // The hello-auth, on the control endpoint: the acceptor marks this node up.
  absl::Status SendAuth() {
    return OnLoop([&]() -> absl::Status {
      control_->SendAm(kAmId,
                       wire::Encode({.type = wire::MessageType::kHelloAuth},
                                    wire::EncodeProof(wire::MakeProof(
                                        "", wire::Role::kDialer, nonce_, their_nonce_, name_))),
                       {}, nullptr);
      return absl::OkStatus();
    });
  }

 private:
  static constexpr uint16_t kAmId = 1;  // axond's one active-message id

  FakePeer(std::string name, std::unique_ptr<ucx::Loop> loop)
      : name_(std::move(name)), loop_(std::move(loop)) {}

  absl::Status OnLoop(absl::AnyInvocable<absl::Status() &&> fn) {
    auto done = loop_->Call<absl::Status>(std::move(fn), absl::Seconds(10));
    return done.ok() ? *done : done.status();
  }

  void Keep(ucx::AmMessage& message) {
    auto decoded = wire::Decode(message.header, message.data_length());
    if (!decoded.ok()) return;
    if (decoded->header.type == wire::MessageType::kHello && !reject_with_.empty()) {
      for (auto& ep : accepted_) {
        if (ep->id() != message.from) continue;
        ep->SendAm(
            kAmId,
            wire::Encode({.type = wire::MessageType::kReject}, wire::EncodeReject(reject_with_)),
            {}, nullptr);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    received_.push_back({decoded->header.type, {decoded->body.begin(), decoded->body.end()}});
  }

  const std::string name_;
  std::unique_ptr<ucx::Loop> loop_;
  std::unique_ptr<ucx::Endpoint> control_, data_;  // UCX thread only
  std::unique_ptr<ucx::Listener> listener_;        // and these
  std::vector<std::unique_ptr<ucx::Endpoint>> accepted_;
  std::string reject_with_;
  wire::Nonce nonce_{}, their_nonce_{};
  std::mutex mu_;
  std::vector<Received> received_;
};

}  // namespace axon::testing
