// Router: where a client's send goes. Its address is "endpoint" or
// "node/endpoint". This node's endpoints are the matcher's, or with engine
// shards the matcher of the shard that serves the endpoint's session; another
// node's go to the remote path, or fail when this daemon has no peer plane.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "daemon/engine/matcher.h"
#include "daemon/engine/records.h"

namespace axon::daemon {

class Router {
 public:
  // Takes a send to another node (RemotePath::SendFromLoop in axond).
  using Remote = std::function<void(Outgoing&&)>;

  Router(std::string node_name, Matcher& matcher, MatchSink& sink)
      : node_name_(std::move(node_name)), matcher_(matcher), sink_(sink) {}

  // Takes a send to an endpoint of this node that session `owner`, served by
  // another engine shard, bound.
  using Elsewhere = std::function<void(Pending&&, std::string to, uint64_t owner)>;

  // Sends to other nodes go to `remote` from now on.
  void SetRemote(Remote remote) { remote_ = std::move(remote); }
  // Sends to endpoints of sessions for which `here` is false go to
  // `elsewhere` from now on.
  void SetElsewhere(std::function<bool(uint64_t session)> here, Elsewhere elsewhere) {
    here_ = std::move(here);
    elsewhere_ = std::move(elsewhere);
  }

  // Routes `send` (from endpoint send.from of session send.session) to
  // `address`, or fails it.
  void Send(Pending&& send, absl::string_view address);
  // Hands `send`, bound for node send.node, to the remote path, or fails it.
  void SendRemote(Outgoing&& send);

 private:
  absl::Status NoPeerPlane(absl::string_view node) const;

  const std::string node_name_;
  Matcher& matcher_;
  MatchSink& sink_;
  Remote remote_;
  std::function<bool(uint64_t session)> here_;
  Elsewhere elsewhere_;
};

}  // namespace axon::daemon
