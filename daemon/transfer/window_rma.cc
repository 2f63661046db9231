#include "daemon/transfer/window_rma.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/engine/remote_path.h"

namespace axon::daemon {
namespace {

// What Region::rma_registration holds: the region's UCX registration and
// its packed key.
struct Registration {
  std::unique_ptr<ucx::MemoryHandle> handle;
  std::vector<uint8_t> key;
};

// One request being served: done when every block's get or put is.
struct Serving {
  std::string node;
  bool put = false;
  std::vector<std::unique_ptr<ucx::RemoteKey>> keys;
  std::shared_ptr<Region> region;
  Then then;
  size_t left = 1;  // until every block is issued
  absl::Status status;
};

}  // namespace

absl::StatusOr<const std::vector<uint8_t>*> WindowRma::KeyOf(Region& region) {
  std::shared_ptr<const void>& slot = region.rma_registration();
  if (!slot) {
    auto handle = path_.peers_.RegisterFromLoop(region.data(), region.length());
    if (!handle.ok()) return handle.status();
    auto key = (*handle)->PackRemoteKey();
    if (!key.ok()) return key.status();
    if (key->empty() || key->size() > wire::kMaxRmaKeyBytes) {
      return absl::InternalError(absl::StrCat("a packed remote key of ", key->size(), " bytes"));
    }
    slot = std::make_shared<const Registration>(
        Registration{.handle = *std::move(handle), .key = *std::move(key)});
  }
  return &static_cast<const Registration*>(slot.get())->key;
}

void WindowRma::Send(NodeLink& link, Outgoing&& send) {
  const RmaBlocks& blocks = *send.rma;
  wire::RmaRequest request;
  request.blocks.reserve(blocks.local.size());
  std::vector<const Region*> keyed;  // key i is keyed[i]'s
  for (size_t i = 0; i < blocks.local.size(); ++i) {
    const Part& p = blocks.local[i];
    auto at = std::find(keyed.begin(), keyed.end(), p.region.get());
    if (at == keyed.end()) {
      auto key = KeyOf(*p.region);
      if (!key.ok()) {
        path_.Finish(send, key.status());
        return;
      }
      request.keys.push_back(**key);
      at = keyed.insert(keyed.end(), p.region.get());
    }
    request.blocks.push_back({.window_offset = blocks.window_offsets[i],
                              .address = reinterpret_cast<uintptr_t>(p.data()),
                              .length = p.length,
                              .key = static_cast<uint32_t>(at - keyed.begin())});
  }
  if (blocks.notify) {
    request.notify = true;
    request.notify_tag = blocks.notify_tag;
    const Part& note = blocks.notify_bytes;
    if (note.length != 0) {
      request.notify_bytes.assign(reinterpret_cast<const char*>(note.data()), note.length);
    }
  }
  auto bytes = std::make_shared<const std::vector<uint8_t>>(wire::EncodeRmaRequest(request));
  ucx::Parts parts{{bytes->data(), bytes->size()}};
  path_.Post(link, std::move(send), std::move(parts), ucx::Keepalives{bytes});
}

void WindowRma::Land(std::shared_ptr<Incoming>, std::shared_ptr<Region>, uint8_t*, Then then) {
  then(absl::InternalError("an RMA request is served, not landed"));
}

void WindowRma::Serve(const Incoming& message, const wire::RmaRequest& request,
                      std::shared_ptr<Region> region, uint8_t* window, Then then) {
  auto state = std::make_shared<Serving>();
  state->node = message.node;
  state->put = message.window.op == wire::WindowFrame::kRmaRead;
  state->region = std::move(region);
  state->then = std::move(then);
  for (const std::vector<uint8_t>& packed : request.keys) {
    auto key = path_.peers_.UnpackKeyFromLoop(message.node, packed);
    if (!key.ok()) {
      state->then(key.status());
      return;
    }
    state->keys.push_back(*std::move(key));
  }
  uint64_t bytes = 0;
  // A read's bytes must be at the initiator, not merely sent, before the
  // answer: a flush after the last put, failed or not (no put of a failed
  // read may land after the initiator heard of the failure).
  auto finish = [this, alive = path_.alive()](const std::shared_ptr<Serving>& s) {
    if (!*alive) return;
    if (!s->put) {
      s->then(s->status);
      return;
    }
    path_.peers_.FlushFromLoop(s->node, [s, alive](const absl::Status& st) {
      if (*alive) s->then(s->status.ok() ? st : s->status);
    });
  };
  for (const wire::RmaBlock& b : request.blocks) {
    ++state->left;
    bytes += b.length;
    path_.peers_.RmaFromLoop(state->node, state->put, window + b.window_offset, b.length, b.address,
                             *state->keys[b.key], [state, finish](const absl::Status& st) {
                               if (state->status.ok() && !st.ok()) state->status = st;
                               if (--state->left == 0) finish(state);
                             });
  }
  ++served_;
  served_bytes_ += bytes;
  if (--state->left == 0) finish(state);
}

}  // namespace axon::daemon
