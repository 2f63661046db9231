// Router: where a client's send goes. Its address is "endpoint" or
// "node/endpoint". This node's endpoints are the matcher's; another node's go
// to the remote path, or fail when this daemon has no peer plane.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "daemon/engine/matcher.h"
#include "daemon/engine/records.h"

namespace axon::daemon {

class Router {
 public:
  // Takes a send to another node (RemotePath::SendFromLoop in axond).
  using Remote = std::function<void(Outgoing)>;

  Router(std::string node_name, Matcher& matcher, MatchSink& sink)
      : node_name_(std::move(node_name)), matcher_(matcher), sink_(sink) {}

  // Sends to other nodes go to `remote` from now on.
  void SetRemote(Remote remote) { remote_ = std::move(remote); }

  // Routes `send` (from endpoint send.from of session send.session) to
  // `address`, or fails it.
  void Send(Pending&& send, absl::string_view address);

 private:
  const std::string node_name_;
  Matcher& matcher_;
  MatchSink& sink_;
  Remote remote_;
};

}  // namespace axon::daemon
