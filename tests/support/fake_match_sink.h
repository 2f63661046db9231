// A MatchSink that records the matcher's decisions, and host memory a test
// owns, for unit tests of the matcher and the router.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/engine/matcher.h"

namespace axon::daemon::testing {

// Host memory the test owns.
class BufferRegion final : public Region {
 public:
  explicit BufferRegion(uint64_t length) : BufferRegion(std::vector<uint8_t>(length)) {}

 private:
  explicit BufferRegion(std::vector<uint8_t> bytes)
      : Region(bytes.data(), bytes.size(), MemoryKind::kHost, -1), bytes_(std::move(bytes)) {}
  std::vector<uint8_t> bytes_;
};

struct Failure {
  uint64_t session, op_id;
  absl::StatusCode code;
  std::string message;
};

class FakeSink final : public MatchSink {
 public:
  std::optional<uint64_t> Owner(absl::string_view endpoint) override {
    ++owner_lookups;
    auto it = owners.find(std::string(endpoint));
    if (it == owners.end()) return std::nullopt;
    return it->second;
  }
  void Deliver(Pending& send, const Pending& receive) override {
    deliveries.push_back({Name(send), receive.op_id});
  }
  void LandInArea(const Pending& send, uint64_t owner, const std::shared_ptr<Region>&, uint8_t*,
                  uint64_t sequence) override {
    landings.push_back({owner, sequence, Name(send)});
    if (land_at_once) matcher->Landed(owner, sequence, true);
  }
  void Fail(uint64_t session, uint64_t op_id, const absl::Status& why) override {
    failures.push_back({session, op_id, why.code(), std::string(why.message())});
  }
  void Announce(uint64_t session, const wire::Completion& arrival) override {
    announced.push_back({session, arrival.arrival.slot,
                         wire::NameField(arrival.arrival.endpoint) + " <- " +
                             wire::NameField(arrival.arrival.source)});
  }
  void Refuse(const Incoming& message, const absl::Status& why) override {
    refusals.push_back({message.message_id, why.code()});
  }

  // A send as the tests name it: "op N" from here, "node#id" from a node.
  static std::string Name(const Pending& send) {
    if (send.incoming) return send.incoming->node + "#" + std::to_string(send.incoming->message_id);
    return "op " + std::to_string(send.op_id);
  }
  std::vector<uint64_t> FailedOps() const {
    std::vector<uint64_t> ops;
    for (const Failure& f : failures) ops.push_back(f.op_id);
    return ops;
  }

  struct Delivery {
    std::string send;
    uint64_t receive_op;
    bool operator==(const Delivery&) const = default;
  };
  struct Landing {
    uint64_t owner, sequence;
    std::string send;
  };
  struct Arrival {
    uint64_t session, slot;
    std::string names;
  };
  std::map<std::string, uint64_t> owners;
  size_t owner_lookups = 0;
  Matcher* matcher = nullptr;
  bool land_at_once = true;
  std::vector<Delivery> deliveries;
  std::vector<Landing> landings;
  std::vector<Failure> failures;
  std::vector<Arrival> announced;
  std::vector<std::pair<uint64_t, absl::StatusCode>> refusals;
};

}  // namespace axon::daemon::testing
