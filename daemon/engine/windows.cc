// One-sided Write and Read (kWrite and kRead ring entries): on this node
// first, then (RemoteWindowOp onwards) to and from windows on other nodes.
//
// The operation list is copied out of the client's memory and checked whole
// before any byte moves: the initiator's endpoint and regions here, then the
// window (WindowTable::Acquire: capability, access list, access kind) and
// every block's bounds in it. The window is held while the blocks are copied
// (host bytes at once, GPU bytes by the copier), so revoking it waits for
// them. Then the notification, if the operation carries one, goes to the
// window's notify endpoint as a message from the initiator's endpoint under
// the operation's own op id: it cannot arrive before the bytes, and the
// operation completes once it was taken there.
#include <algorithm>
#include <optional>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/wire/window.h"
#include "daemon/engine/ring_engine.h"
#include "daemon/window/window_table.h"

namespace axon::daemon {

// One block's copy: from `source` to `into` in `target`.
struct RingEngine::BlockCopy {
  Pending source;
  std::shared_ptr<Region> target;
  uint8_t* into = nullptr;
};

// What an operation's copies share until the last one finishes.
struct RingEngine::WindowCopies {
  uint64_t session = 0, op_id = 0;
  size_t left = 0;
  uint64_t bytes = 0;
  absl::Status status;
  std::shared_ptr<WindowTable::Grant> grant;
  // The notification: bytes of the list in the client's region.
  Pending notify;
  bool notifies = false;
};

void RingEngine::WindowOp(uint64_t id, Session& session, const wire::Submission& submission) {
  const bool write = static_cast<wire::RingOp>(submission.op) == wire::RingOp::kWrite;
  auto fail = [&](absl::Status why) { Complete(id, submission.op_id, std::move(why)); };
  WindowTable* windows = sessions_manager_.windows();
  if (windows == nullptr) return fail(absl::UnavailableError("the daemon is shutting down"));
  const absl::string_view endpoint = wire::NameView(submission.endpoint);
  if (Owner(endpoint) != id) return fail(NotBound(endpoint));
  if (submission.length > wire::WindowOpListBytes(wire::kMaxWindowBlocks, wire::kMaxNotifyBytes)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("an operation list of ", submission.length, " bytes is too long")));
  }
  auto list_part = FindPart(id, session, submission.region, submission.offset, submission.length);
  if (!list_part.ok()) return fail(list_part.status());
  if (list_part->region->on_gpu()) {
    return fail(absl::InvalidArgumentError("an operation list lies in host memory"));
  }
  // Copied out first: the client can change its memory under us.
  const std::vector<uint8_t> bytes(list_part->data(), list_part->data() + submission.length);
  auto list = wire::DecodeWindowOpList(bytes);
  if (!list.ok()) return fail(list.status());

  const absl::string_view node = wire::NameView(submission.peer);
  if (!node.empty() && node != node_name_) {
    RemoteWindowOp(id, session, submission, *list, *std::move(list_part), node);
    return;
  }
  auto grant = windows->Acquire(list->window, list->capability, node_name_, endpoint,
                                write ? wire::kWindowWrite : wire::kWindowRead);
  if (!grant.ok()) return fail(grant.status());
  WindowTable::Grant& window = **grant;
  if (list->notify) {
    if (auto st = window.CheckNotifies(); !st.ok()) return fail(st);
  }

  // Every block checked before any moves: a bad one fails the operation whole.
  std::vector<BlockCopy> copies;
  copies.reserve(list->blocks.size());
  for (const wire::WindowBlock& b : list->blocks) {
    auto local = FindPart(id, session, b.region, b.offset, b.length);
    if (!local.ok()) return fail(local.status());
    if (auto st = window.Check(b.window_offset, b.length); !st.ok()) return fail(st);
    BlockCopy c;
    if (write) {
      c.source =
          Pending{.region = std::move(local->region), .offset = b.offset, .length = b.length};
      c.target = window.region();
      c.into = window.data() + b.window_offset;
    } else {
      c.source = Pending{.region = window.region(),
                         .offset = window.offset() + b.window_offset,
                         .length = b.length};
      c.target = std::move(local->region);
      c.into = c.target->data() + b.offset;
    }
    copies.push_back(std::move(c));
  }

  if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
  auto state = std::make_shared<WindowCopies>();
  state->session = id;
  state->op_id = submission.op_id;
  state->grant = *std::move(grant);
  state->left = 1;  // until every copy is issued
  if (list->notify) {
    state->notifies = true;
    state->notify = Pending{.session = id,
                            .op_id = submission.op_id,
                            .region = std::move(list_part->region),
                            .offset = submission.offset + list->notify_offset(),
                            .length = list->notify_length,
                            .tag = list->notify_tag,
                            .from = std::string(endpoint)};
  }
  // Host blocks are copied here (or by the copy threads); GPU blocks are
  // queued on their device's copier, which answers once per device for the
  // whole operation rather than once per block (KV-cache batches are
  // thousands of small blocks).
  // GPU blocks by device, copied in one batch call each; a block into
  // another GPU's memory goes alone (CopyOnGpu maps it for a peer copy).
  struct DeviceBatch {
    int device = -1;
    std::vector<void*> to;
    std::vector<const void*> from;
    std::vector<size_t> bytes;
    std::vector<Region*> pin;  // host regions among the blocks', once each
  };
  absl::InlinedVector<DeviceBatch, 2> batches;
  absl::InlinedVector<int, 2> devices;
  auto batch_of = [&](int device) -> DeviceBatch& {
    for (DeviceBatch& b : batches) {
      if (b.device == device) return b;
    }
    batches.push_back(DeviceBatch{.device = device});
    return batches.back();
  };
  std::vector<const BlockCopy*> host;
  uint64_t host_bytes = 0;
  for (BlockCopy& c : copies) {
    state->bytes += c.source.length;
    const int device = c.source.region->on_gpu() ? c.source.region->device()
                       : c.target->on_gpu()      ? c.target->device()
                                                 : -1;
    if (device < 0) {
      host.push_back(&c);
      host_bytes += c.source.length;
      continue;
    }
    if (std::find(devices.begin(), devices.end(), device) == devices.end()) {
      devices.push_back(device);
    }
    if (c.target->on_gpu() && c.target->device() != device) {
      const ucx::Parts span{{c.source.region->data() + c.source.offset, c.source.length}};
      if (auto st =
              CopyOnGpu(copier_, device, span, *c.target, c.into, {c.source.region, c.target});
          !st.ok()) {
        state->status = std::move(st);
        break;
      }
      continue;
    }
    DeviceBatch& b = batch_of(device);
    b.to.push_back(c.into);
    b.from.push_back(c.source.region->data() + c.source.offset);
    b.bytes.push_back(c.source.length);
    for (Region* r : {c.source.region.get(), c.target.get()}) {
      if (!r->on_gpu() && std::find(b.pin.begin(), b.pin.end(), r) == b.pin.end()) {
        b.pin.push_back(r);
      }
    }
  }
  if (state->status.ok()) CopyHostBlocks(host, host_bytes, state);
  for (DeviceBatch& b : batches) {
    if (!state->status.ok()) break;
    // Pinning runs in the current context: the copying device's.
    absl::Status st = cuda::UseDevice(b.device);
    if (st.ok()) {
      for (Region* r : b.pin) r->PinForGpu();
      // Device memory only: one kernel for the small blocks.
      st = b.pin.empty() ? copier_.Gather(b.device, b.to, b.from, b.bytes)
                         : copier_.CopyBatch(b.device, b.to, b.from, b.bytes);
    }
    if (!st.ok()) state->status = std::move(st);
  }
  for (int device : devices) {
    ++state->left;
    // The copies read and write the blocks' regions until then.
    copier_.Then(device, [this, state, keep = copies](absl::Status st) {
      OneCopied(*state, std::move(st));
    });
  }
  if (--state->left == 0) WindowCopied(*state);
}

void RingEngine::CopyHostBlocks(absl::Span<const BlockCopy* const> host, uint64_t bytes,
                                const std::shared_ptr<WindowCopies>& state) {
  auto copied = [this, state](absl::Status st) { OneCopied(*state, std::move(st)); };
  // Many blocks worth the copy threads together (a KV-cache batch is a
  // thousand small ones): side by side there, instead of one memcpy after
  // another on this thread.
  if (host.size() > 1 && host_copier_ && host_copier_->Takes(bytes)) {
    std::vector<HostCopier::Block> blocks;
    blocks.reserve(host.size());
    std::vector<std::shared_ptr<Region>> keep;
    for (const BlockCopy* c : host) {
      blocks.push_back({c->source.region->data() + c->source.offset, c->into, c->source.length});
      for (const std::shared_ptr<Region>* r : {&c->source.region, &c->target}) {
        if (std::find(keep.begin(), keep.end(), *r) == keep.end()) keep.push_back(*r);
      }
    }
    ++state->left;
    host_copier_->Scatter(std::move(blocks), std::move(keep), std::move(copied));
    return;
  }
  for (const BlockCopy* c : host) {
    if (CopyLocalNow(c->source, *c->target, c->into)) continue;
    ++state->left;
    CopyLocal(c->source, c->target, c->into, copied);
  }
}

void RingEngine::OneCopied(WindowCopies& state, absl::Status status) {
  if (state.status.ok()) state.status = std::move(status);
  if (--state.left == 0) WindowCopied(state);
}

void RingEngine::WindowCopied(WindowCopies& done) {
  // The bytes are in place: the window may be revoked from now on.
  std::string notify_endpoint = done.grant->notify_endpoint();
  done.grant->Moved(done.bytes);
  done.grant.reset();
  if (!done.status.ok() || !done.notifies) {
    Complete(done.session, done.op_id, std::move(done.status), done.bytes);
    return;
  }
  router_.Send(std::move(done.notify), notify_endpoint);
}

// --- Windows on other nodes: each block is a data frame with a window
// section, moved by the transfer kind its memory calls for and checked and
// landed by the owner's daemon (WindowArrive there); once every block is
// acknowledged, the notification follows as one more frame, which the owner
// turns into a message for the window's notify endpoint.

void RingEngine::RemoteWindowOp(uint64_t id, Session& session, const wire::Submission& submission,
                                const wire::WindowOpList& list, Part list_part,
                                absl::string_view node) {
  auto fail = [&](absl::Status why) { Complete(id, submission.op_id, std::move(why)); };
  const bool write = static_cast<wire::RingOp>(submission.op) == wire::RingOp::kWrite;
  // Checked against the descriptor's length before anything leaves; the
  // owner's daemon checks again against the window itself.
  std::vector<Part> parts;
  parts.reserve(list.blocks.size());
  uint64_t bytes = 0;
  for (const wire::WindowBlock& b : list.blocks) {
    auto local = FindPart(id, session, b.region, b.offset, b.length);
    if (!local.ok()) return fail(local.status());
    if (auto st = CheckWindowBounds(list.window, list.window_length, b.window_offset, b.length);
        !st.ok()) {
      return fail(st);
    }
    bytes += b.length;
    parts.push_back(*std::move(local));
  }
  if (submission.timeout_ms != 0) AddDeadline(id, submission.op_id, submission.timeout_ms);
  const absl::string_view endpoint = wire::NameView(submission.endpoint);
  if (list.rma &&
      std::none_of(parts.begin(), parts.end(), [](const Part& p) { return p.region->on_gpu(); })) {
    RmaWindowOp(id, submission, list, std::move(list_part), node, std::move(parts), bytes);
    return;
  }
  RemoteWindow& op =
      TrackRemoteWindow(id, submission, list, std::move(list_part), node, bytes, parts.size(),
                        write ? wire::WindowFrame::kWrite : wire::WindowFrame::kRead);
  const wire::WindowTarget target = op.window;
  if (!write) {
    // Where each reply lands, registered with the remote path's shard
    // before the requests get there (in order with them).
    std::vector<std::pair<uint64_t, ReadTarget>> targets;
    for (Part& p : parts) {
      const uint64_t token = Tagged(next_read_token_++);
      op.read_tokens.push_back(token);
      targets.push_back({token, ReadTarget{id, p.region, p.offset, p.length}});
    }
    OnRemoteShard([targets = std::move(targets)](RingEngine& e) mutable {
      for (auto& [token, spot] : targets) e.read_targets_[token] = std::move(spot);
    });
  }
  const std::vector<uint64_t> tokens = op.read_tokens;
  // `op` may go while these are sent: a send that fails at once answers here.
  for (size_t i = 0; i < parts.size(); ++i) {
    wire::WindowTarget block = target;
    block.offset = list.blocks[i].window_offset;
    Outgoing frame{.session = id,
                   .op_id = submission.op_id,
                   .node = std::string(node),
                   .from = std::string(endpoint),
                   .region = std::move(parts[i].region),
                   .offset = parts[i].offset,
                   .length = parts[i].length};
    if (!write) {  // a request: no payload
      block.length = parts[i].length;
      block.token = tokens[i];
      frame.length = 0;
    }
    frame.window = block;
    router_.SendRemote(std::move(frame));
  }
}

void RingEngine::RmaWindowOp(uint64_t id, const wire::Submission& submission,
                             const wire::WindowOpList& list, Part list_part, absl::string_view node,
                             std::vector<Part> parts, uint64_t bytes) {
  // Host blocks of a window whose owner serves RMA: one request frame per
  // kMaxRmaBlocks blocks, and the owner's daemon moves the bytes.
  const bool write = static_cast<wire::RingOp>(submission.op) == wire::RingOp::kWrite;
  // A frame takes up to kMaxRmaBlocks blocks from up to kMaxRmaKeys regions
  // (a key each).
  std::vector<std::shared_ptr<RmaBlocks>> frames;
  std::vector<const Region*> keyed;  // the regions of the frame being filled
  for (size_t i = 0; i < parts.size(); ++i) {
    const Region* region = parts[i].region.get();
    bool known = std::find(keyed.begin(), keyed.end(), region) != keyed.end();
    if (frames.empty() || frames.back()->local.size() == wire::kMaxRmaBlocks ||
        (!known && keyed.size() == wire::kMaxRmaKeys)) {
      frames.push_back(std::make_shared<RmaBlocks>());
      keyed.clear();
      known = false;
    }
    if (!known) keyed.push_back(region);
    frames.back()->local.push_back(std::move(parts[i]));
    frames.back()->window_offsets.push_back(list.blocks[i].window_offset);
  }
  RemoteWindow& op =
      TrackRemoteWindow(id, submission, list, std::move(list_part), node, bytes, frames.size(),
                        write ? wire::WindowFrame::kRmaWrite : wire::WindowFrame::kRmaRead);
  // One request: the notification rides in it, and the owner's daemon
  // delivers it after the blocks (answering the request when it lands)
  // instead of a frame of its own.
  if (op.notify && frames.size() == 1) {
    RmaBlocks& only = *frames.front();
    only.notify = true;
    only.notify_tag = op.notify_tag;
    only.notify_bytes = op.notify_bytes;
    op.notify = false;
  }
  const wire::WindowTarget target = op.window;
  const std::string from = op.from;
  // `op` may go while these are sent: a send that fails at once answers here.
  for (std::shared_ptr<RmaBlocks>& blocks : frames) {
    std::shared_ptr<Region> region = blocks->local.front().region;
    router_.SendRemote(Outgoing{.session = id,
                                .op_id = submission.op_id,
                                .node = std::string(node),
                                .from = from,
                                .region = std::move(region),
                                .window = target,
                                .rma = std::move(blocks)});
  }
}

RingEngine::RemoteWindow& RingEngine::TrackRemoteWindow(
    uint64_t id, const wire::Submission& submission, const wire::WindowOpList& list, Part list_part,
    absl::string_view node, uint64_t bytes, size_t frames, wire::WindowFrame kind) {
  RemoteWindow& op = window_ops_[{id, submission.op_id}];
  op = RemoteWindow{.left = frames,
                    .bytes = bytes,
                    .node = std::string(node),
                    .from = std::string(wire::NameView(submission.endpoint)),
                    .window = {.op = kind, .id = list.window, .capability = list.capability},
                    .notify = list.notify,
                    .notify_tag = list.notify_tag,
                    .notify_bytes = {std::move(list_part.region),
                                     submission.offset + list.notify_offset(), list.notify_length}};
  return op;
}

bool RingEngine::WindowFrameAnswered(uint64_t id, uint64_t op_id, const absl::Status& status) {
  auto it = window_ops_.find({id, op_id});
  if (it == window_ops_.end()) return false;
  RemoteWindow& op = it->second;
  if (op.status.ok() && !status.ok()) op.status = status;
  if (--op.left != 0) return true;
  if (op.status.ok() && op.notify) {
    op.notify = false;
    op.left = 1;
    wire::WindowTarget target = op.window;
    const bool write =
        op.window.op == wire::WindowFrame::kWrite || op.window.op == wire::WindowFrame::kRmaWrite;
    target.op = write ? wire::WindowFrame::kNotifyWrite : wire::WindowFrame::kNotifyRead;
    router_.SendRemote(Outgoing{.session = id,
                                .op_id = op_id,
                                .node = op.node,
                                .from = op.from,
                                .tag = op.notify_tag,
                                .region = op.notify_bytes.region,
                                .offset = op.notify_bytes.offset,
                                .length = op.notify_bytes.length,
                                .window = target});
    return true;
  }
  const absl::Status result = std::move(op.status);
  const uint64_t bytes = op.bytes;
  if (!op.read_tokens.empty()) {  // replies that never came land nowhere now
    OnRemoteShard([tokens = std::move(op.read_tokens)](RingEngine& e) {
      for (uint64_t token : tokens) e.read_targets_.erase(token);
    });
  }
  window_ops_.erase(it);
  Complete(id, op_id, result, bytes);
  return true;
}

void RingEngine::WindowArrive(const std::shared_ptr<Incoming>& message) {
  const wire::WindowFrame kind = message->window.op;
  if (kind == wire::WindowFrame::kReadReply) {
    ReadReplyArrive(message);
    return;
  }
  const bool reads = kind == wire::WindowFrame::kRead || kind == wire::WindowFrame::kNotifyRead ||
                     kind == wire::WindowFrame::kRmaRead;
  WindowTable* windows = sessions_manager_.windows();
  if (windows == nullptr) {
    Refuse(*message, absl::UnavailableError("the daemon is shutting down"));
    return;
  }
  auto grant = windows->Acquire(message->window.id, message->window.capability, message->node,
                                message->from, reads ? wire::kWindowRead : wire::kWindowWrite);
  if (!grant.ok()) {
    Refuse(*message, grant.status());
    return;
  }
  std::shared_ptr<WindowTable::Grant> window = *std::move(grant);
  if (kind == wire::WindowFrame::kRmaWrite || kind == wire::WindowFrame::kRmaRead) {
    RmaArrive(message, std::move(window));
    return;
  }
  if (kind == wire::WindowFrame::kRead) {
    ReadArrive(message, std::move(window));
    return;
  }
  if (kind == wire::WindowFrame::kNotifyWrite || kind == wire::WindowFrame::kNotifyRead) {
    if (auto st = window->CheckNotifies(); !st.ok()) {
      Refuse(*message, st);
      return;
    }
    // From here on a message like any other, from the initiator's endpoint.
    message->to = window->notify_endpoint();
    message->window = {};
    window.reset();
    Arrive(message);
    return;
  }
  if (auto st = window->Check(message->window.offset, message->length()); !st.ok()) {
    Refuse(*message, st);
    return;
  }
  uint8_t* into = window->data() + message->window.offset;
  if (remote_->LandNowFromLoop(*message, *window->region(), into)) {
    window->Moved(message->length());
    return;
  }
  const std::shared_ptr<Region> region = window->region();
  remote_->LandFromLoop(message, region, into,
                        [window = std::move(window), length = message->length()](absl::Status st) {
                          if (st.ok()) window->Moved(length);
                        });
}

void RingEngine::RmaArrive(const std::shared_ptr<Incoming>& message,
                           std::shared_ptr<WindowTable::Grant> window) {
  if (message->pending || message->chunked || !message->handle.empty()) {
    Refuse(*message, absl::InvalidArgumentError("an RMA request must come whole in its frame"));
    return;
  }
  if (!remote_->serves_rma()) {
    Refuse(
        *message,
        absl::FailedPreconditionError(
            "this daemon serves no one-sided transfers by RMA (peers.window_transfer is frames)"));
    return;
  }
  if (window->region()->on_gpu()) {
    Refuse(*message, absl::FailedPreconditionError(absl::StrCat(
                         "window ", window->id(), " is GPU memory, which is not served by RMA")));
    return;
  }
  auto request = wire::DecodeRmaRequest({message->data.data(), message->data.size()});
  if (!request.ok()) {
    Refuse(*message, request.status());
    return;
  }
  if (request->notify) {
    if (auto st = window->CheckNotifies(); !st.ok()) {
      Refuse(*message, st);
      return;
    }
  }
  uint64_t bytes = 0;
  for (const wire::RmaBlock& b : request->blocks) {
    if (auto st = window->Check(b.window_offset, b.length); !st.ok()) {
      Refuse(*message, st);
      return;
    }
    bytes += b.length;
  }
  // The window stays held until every byte has moved.
  window->ByRma();
  const std::shared_ptr<Region> region = window->region();
  uint8_t* base = window->data();
  std::optional<Notified> notified;
  if (request->notify) {
    notified =
        Notified{window->notify_endpoint(), request->notify_tag, std::move(request->notify_bytes)};
  }
  remote_->ServeRmaFromLoop(*message, *request, region, base,
                            [this, message, window = std::move(window), bytes,
                             notified = std::move(notified)](absl::Status st) mutable {
                              if (st.ok()) window->Moved(bytes);
                              window.reset();
                              if (!st.ok() || !notified) {
                                remote_->AnswerFromLoop(*message, st);
                                return;
                              }
                              // From here on the request is the notification: a message like any
                              // other, from the initiator's endpoint, answered once it lands.
                              message->to = std::move(notified->endpoint);
                              message->tag = notified->tag;
                              message->window = {};
                              message->data.assign(
                                  reinterpret_cast<const uint8_t*>(notified->bytes.data()),
                                  notified->bytes.size());
                              message->bytes = message->total = notified->bytes.size();
                              Arrive(message);
                            });
}

void RingEngine::ReadArrive(const std::shared_ptr<Incoming>& message,
                            std::shared_ptr<WindowTable::Grant> window) {
  const wire::WindowTarget& read = message->window;
  if (auto st = window->Check(read.offset, read.length); !st.ok()) {
    Refuse(*message, st);
    return;
  }
  // The bytes go back as a frame of the daemon's own (session 0), by the
  // transfer kind their memory calls for; the request is answered once the
  // reply is, so the window stays held until the bytes have left.
  const uint64_t reply_id = next_reply_id_++;
  Outgoing reply{
      .session = 0,
      .op_id = reply_id,
      .node = message->node,
      .region = window->region(),
      .offset = window->offset() + read.offset,
      .length = read.length,
      .window = {.op = wire::WindowFrame::kReadReply, .length = read.length, .token = read.token}};
  read_replies_[reply_id] = ReadReply{message, std::move(window)};
  remote_->SendFromLoop(std::move(reply));
}

void RingEngine::ReadReplyAnswered(uint64_t reply_id, const absl::Status& status) {
  auto it = read_replies_.find(reply_id);
  if (it == read_replies_.end()) return;
  ReadReply reply = std::move(it->second);
  read_replies_.erase(it);
  if (status.ok()) reply.window->Moved(reply.request->window.length);
  reply.window.reset();
  if (remote_) remote_->AnswerFromLoop(*reply.request, status);
}

void RingEngine::ReadReplyArrive(const std::shared_ptr<Incoming>& message) {
  auto it = read_targets_.find(message->window.token);
  if (it == read_targets_.end()) {
    Refuse(*message, absl::NotFoundError("no read waits for this reply (it failed or was "
                                         "cancelled meanwhile)"));
    return;
  }
  ReadTarget target = std::move(it->second);
  read_targets_.erase(it);
  if (message->length() != target.length) {
    Refuse(*message,
           absl::InvalidArgumentError(absl::StrCat("a read reply of ", message->length(),
                                                   " bytes for a read of ", target.length)));
    return;
  }
  uint8_t* into = target.region->data() + target.offset;
  if (remote_->LandNowFromLoop(*message, *target.region, into)) return;
  remote_->LandFromLoop(message, target.region, into, [](absl::Status) {});
}

}  // namespace axon::daemon
