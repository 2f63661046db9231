#include "daemon/engine/matcher.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace axon::daemon {
namespace {

absl::Status NoReceivePosted(absl::string_view to) {
  return absl::NotFoundError(absl::StrCat("endpoint ", to,
                                          " has no receive posted for this message (a reply "
                                          "whose caller gave up)"));
}

absl::Status NoEndpoint(absl::string_view to, absl::string_view node) {
  return absl::NotFoundError(absl::StrCat("no endpoint '", to, "' on node ", node));
}

}  // namespace

void Matcher::Send(Pending&& send, const std::string& to) {
  if (!sink_.Owner(to)) {
    sink_.Fail(send.session, send.op_id, NoEndpoint(to, node_name_));
    return;
  }
  EndpointQueues& queues = QueuesOf(to);
  auto receive =
      queues.receives.TakeFirst(send.tag, [&](const Pending& r) { return Accepts(r, send); });
  if (receive) {
    Meet(send, *receive);
    return;
  }
  if (send.tag & wire::kPostedOnlyTagBit) {
    sink_.Fail(send.session, send.op_id, NoReceivePosted(to));
    return;
  }
  Park(to, std::move(send));
}

void Matcher::Arrive(const std::shared_ptr<Incoming>& message) {
  const std::string& to = message->to;  // `message` keeps it
  if (!sink_.Owner(to)) {
    sink_.Refuse(*message, NoEndpoint(to, node_name_));
    return;
  }
  EndpointQueues& queues = QueuesOf(to);
  auto receive = queues.receives.TakeFirst(message->tag, [&](const Pending& r) {
    return Accepts(r, message->tag, message->node, message->from);
  });
  if (!receive && (message->tag & wire::kPostedOnlyTagBit)) {
    sink_.Refuse(*message, NoReceivePosted(to));
    return;
  }
  Pending send{.length = message->length(), .tag = message->tag, .incoming = message};
  if (receive) {
    Meet(send, *receive);
    return;
  }
  // Parked, it keeps the message (the remote path recycles only those
  // nobody kept).
  Park(to, std::move(send));
}

void Matcher::Receive(Pending&& receive) {
  EndpointQueues& queues = QueuesOf(receive.from);  // the receiving endpoint
  auto send =
      queues.sends.TakeFirst(receive.tag, [&](const Pending& s) { return Accepts(receive, s); });
  if (!send) {
    queues.receives.push_back(std::move(receive));
    return;
  }
  Meet(*send, receive);
  // Sends held back behind the one taken may land in the area now: nothing
  // else would move them while the area has free slots.
  if (!queues.sends.empty()) FillArea(receive.session);
}

void Matcher::Meet(Pending& send, const Pending& receive) {
  if (send.length > receive.length) {
    const absl::Status no_room = absl::ResourceExhaustedError(
        absl::StrCat("a message of ", send.length, " bytes for a buffer of ", receive.length));
    FailSend(send, no_room);
    sink_.Fail(receive.session, receive.op_id, no_room);
    return;
  }
  sink_.Deliver(send, receive);
}

void Matcher::FailSend(const Pending& send, const absl::Status& why) {
  if (send.incoming) {
    sink_.Refuse(*send.incoming, why);
  } else {
    sink_.Fail(send.session, send.op_id, why);
  }
}

bool Matcher::Abort(uint64_t session, uint64_t op_id, const absl::Status& why) {
  for (auto& [name, queues] : endpoints_) {
    for (auto* q : {&queues.receives, &queues.sends}) {
      if (q->TakeFirstIf([&](const Pending& p) {
            return !p.incoming && p.session == session && p.op_id == op_id;
          })) {
        sink_.Fail(session, op_id, why);
        return true;
      }
    }
  }
  return false;
}

bool Matcher::Withdraw(absl::string_view node, uint64_t message_id) {
  for (auto& [name, queues] : endpoints_) {
    if (queues.sends.TakeFirstIf([&](const Pending& p) {
          return p.incoming && p.incoming->node == node && p.incoming->message_id == message_id;
        })) {
      return true;
    }
  }
  return false;
}

void Matcher::NodeDown(absl::string_view node) {
  for (auto& [name, queues] : endpoints_) {
    queues.sends.remove_if(
        [&](const Pending& p) { return p.incoming && p.incoming->node == node; });
  }
  FailReceivesFrom(node, absl::UnavailableError(absl::StrCat("node ", node, " is down")),
                   [](absl::string_view) { return true; });
}

template <typename Gone>
void Matcher::FailReceivesFrom(absl::string_view node, const absl::Status& why, Gone gone) {
  for (auto& [name, queues] : endpoints_) {
    queues.receives.remove_if([&](const Pending& r) {
      if (r.source_endpoint.empty() || r.source_node != node || !gone(r.source_endpoint)) {
        return false;
      }
      sink_.Fail(
          r.session, r.op_id,
          absl::Status(why.code(), absl::StrCat(why.message(), " (the sender ", r.source_node, "/",
                                                r.source_endpoint, " this receive waited for)")));
      return true;
    });
  }
}

void Matcher::SessionClosed(uint64_t session) {
  for (auto& [name, queues] : endpoints_) {
    for (auto* q : {&queues.receives, &queues.sends}) {
      q->remove_if([session](const Pending& p) { return !p.incoming && p.session == session; });
    }
  }
  areas_.erase(session);
  // Receives waiting for a message from an endpoint here that went away.
  FailReceivesFrom(node_name_, absl::UnavailableError("the sending endpoint went away"),
                   [this](absl::string_view endpoint) { return !sink_.Owner(endpoint); });
  // Sends waiting at an endpoint that went away.
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    if (sink_.Owner(it->first)) {
      ++it;
      continue;
    }
    const absl::Status gone =
        absl::UnavailableError(absl::StrCat("the receiving endpoint ", it->first, " went away"));
    it->second.sends.for_each([&](const Pending& send) { FailSend(send, gone); });
    last_queues_.Forget();
    it = endpoints_.erase(it);
  }
}

size_t Matcher::sends_waiting(const std::string& endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? 0 : it->second.sends.size();
}

size_t Matcher::receives_waiting(const std::string& endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? 0 : it->second.receives.size();
}

size_t Matcher::free_slots(uint64_t session) const {
  auto it = areas_.find(session);
  return it == areas_.end() ? 0 : it->second.free.size();
}

}  // namespace axon::daemon
