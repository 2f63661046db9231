#include "daemon/engine/remote_path.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"
#include "daemon/transfer/chunking.h"
#include "daemon/transfer/gpu_bounce.h"
#include "daemon/transfer/gpu_by_handle.h"
#include "daemon/transfer/host_eager.h"
#include "daemon/transfer/host_rendezvous.h"
#include "daemon/transfer/window_rma.h"
#include "daemon/ucx/loop.h"

namespace axon::daemon {

RemotePath::RemotePath(PeerPlane& peers, GpuCopier& copier, Limits limits, Hooks hooks,
                       std::shared_ptr<IpcMappings> ipc, const Clock& clock)
    : peers_(peers),
      copier_(copier),
      limits_(limits),
      hooks_(std::move(hooks)),
      transport_(peers),
      clock_(clock),
      next_message_id_(limits.first_message_id),
      eager_(std::make_unique<HostEager>(*this)),
      rendezvous_(std::make_unique<HostRendezvous>(*this)),
      bounce_(std::make_unique<GpuBounce>(*this, copier, limits.bounce_keep_bytes)),
      chunking_(std::make_unique<Chunking>(*this, *bounce_)),
      handles_(
          std::make_unique<GpuByHandle>(*this, copier, std::move(ipc), limits.same_host_handles)),
      rma_(std::make_unique<WindowRma>(*this)) {
  peers_.SetHandlersFromLoop(
      {.on_data = [this](const std::string& node, const wire::Header& header,
                         absl::Span<const uint8_t> body,
                         ucx::AmMessage& message) { OnFrame(node, header, body, message); },
       .on_down = [this](const std::string& node,
                         const std::string& why) { OnNodeDown(node, why); },
       .on_tick =
           [this] {
             handles_->Sweep();
             CheckProgressFromLoop();
           },
       .on_up = [this](const std::string& node) { OnNodeUp(node); }});
}

RemotePath::~RemotePath() {
  *alive_ = false;
  peers_.SetHandlersFromLoop({});
}

void RemotePath::SendFromLoop(Outgoing&& send) {
  AXON_DCHECK_ON_LOOP();
  if (auto st = peers_.CheckUpFromLoop(send.node); !st.ok()) {
    if (!peers_.ConnectFromLoop(send.node)) {
      hooks_.complete(send.session, send.op_id, peers_.CheckUpFromLoop(send.node), 0, 0,
                      send.quiet);
      return;
    }
    // Connected on first use: the send waits, in order, on a link held until
    // the connection is up (OnNodeUp), or fails with it (OnNodeDown). Its
    // deadline and cancel find it there like any waiting send.
    NodeLink& n = LinkTo(send.node);
    if (!n.HeldBy(NodeLink::kConnectingHold)) n.Hold(NodeLink::kConnectingHold);
    n.Wait(std::move(send));
    return;
  }
  NodeLink& n = LinkTo(send.node);
  if (n.MustWait()) {
    n.Wait(std::move(send));  // keeps order behind the window
    return;
  }
  Transmit(n, std::move(send));
}

ucx::Parts PartSpans(const Region& region, uint64_t offset, uint64_t length, const PartList& more) {
  uint64_t first = length;
  for (const Part& p : more) first -= p.length;
  ucx::Parts spans;
  spans.reserve(1 + more.size());
  spans.emplace_back(region.data() + offset, first);
  for (const Part& p : more) spans.emplace_back(p.data(), p.length);
  return spans;
}

int GpuDevice(const Region& region, const PartList& more) {
  if (region.on_gpu()) return region.device();
  for (const Part& p : more) {
    if (p.region->on_gpu()) return p.region->device();
  }
  return -1;
}

absl::Status CopyOnGpu(GpuCopier& copier, int device, const ucx::Parts& from, Region& to,
                       uint8_t* into, const std::vector<std::shared_ptr<Region>>& pin) {
  if (to.on_gpu() && to.device() != device) {
    auto st = cuda::EnablePeerAccess(device, to.device());
    if (st.ok()) {
      auto mapped = to.AddressOn(device, into);
      if (mapped.ok()) {
        into = *mapped;
      } else {
        st = mapped.status();
      }
    }
    if (!st.ok()) {
      spdlog::debug("peer copy GPU {} -> GPU {} through host memory: {}", device, to.device(),
                    st.message());
    }
  }
  // Pinning runs in the current context: the copying device's, not device 0's.
  if (auto st = cuda::UseDevice(device); !st.ok()) return st;
  for (const auto& r : pin) r->PinForGpu();
  for (absl::Span<const uint8_t> s : from) {
    if (auto st = copier.Copy(device, into, s.data(), s.size()); !st.ok()) return st;
    into += s.size();
  }
  return absl::OkStatus();
}

Transfer* RemotePath::SendKind(const NodeLink& n, const Outgoing& send) {
  if (send.rma) return rma_.get();
  if (GpuDevice(*send.region, send.more) < 0) {
    return send.length <= limits_.eager_limit ? static_cast<Transfer*>(eager_.get())
                                              : rendezvous_.get();
  }
  if (handles_->Takes(n, send)) return handles_.get();
  if (limits_.gpu_direct_only && !DirectWith(send.node)) return nullptr;
  if (Chunking::Takes(send)) return chunking_.get();
  return bounce_.get();
}

Transfer& RemotePath::LandKind(const Incoming& message, const Region& region) {
  if (message.source) return *handles_;
  if (!message.pending) return *eager_;
  if (region.on_gpu()) return *bounce_;
  return *rendezvous_;
}

void RemotePath::Transmit(NodeLink& n, Outgoing&& send) {
  Transfer* kind = SendKind(n, send);
  if (kind == nullptr) {
    Finish(send, absl::FailedPreconditionError(absl::StrCat(
                     "gpu.remote_path is direct, but node ", send.node,
                     " does not take CUDA memory (its UCX cannot, or its gpu.remote_path is "
                     "staging); set gpu.remote_path to auto to stage")));
    return;
  }
  kind->Send(n, std::move(send));
}

void RemotePath::PostInPlace(NodeLink& n, Outgoing&& send) {
  // One part: the region's bytes in place. Several: UCX gathers them (IOV).
  ucx::Parts parts = PartSpans(*send.region, send.offset, send.length, send.more);
  ucx::Keepalives keep{send.region};
  for (const Part& p : send.more) keep.push_back(p.region);
  Post(n, std::move(send), std::move(parts), std::move(keep));
}

void RemotePath::Finish(const Outgoing& send, absl::Status st) {
  if (send.chunks) {
    chunking_->Answered(send, std::move(st));
    return;
  }
  Complete(send, st);
}

void RemotePath::Complete(const Outgoing& send, const absl::Status& st) {
  hooks_.complete(send.session, send.op_id, st, st.ok() ? send.length : 0, send.tag, send.quiet);
}

void RemotePath::Dispatch(const std::shared_ptr<Incoming>& in) {
  // By handle: opened before the engine sees it, or answered and dropped.
  if (!in->handle.empty() && !handles_->Open(*in)) return;
  // A chunk other than chunk 0 follows its message, not the engine.
  if (in->chunked && !chunking_->Arrived(in)) return;
  hooks_.arrived(in);
}

void RemotePath::Post(NodeLink& n, Outgoing&& send, ucx::Parts&& parts, ucx::Keepalives&& keep,
                      const wire::DataBody& chunk, ucx::MemoryKind memory) {
  // A chunk comes with its id and place; anything else takes the next id.
  const uint64_t id = chunk.total != 0 ? chunk.message_id : next_message_id_++;
  wire::DataView body = wire::View(chunk);  // the names are the send's, not copied
  body.message_id = id;
  body.tag = send.tag;
  body.from = send.from;
  body.to = send.to;
  body.window = send.window;
  uint64_t payload = 0;
  for (const auto& p : parts) payload += p.size();
  // An RMA request always goes eager: the owner reads it before anything
  // moves.
  const auto protocol = payload <= limits_.eager_limit || send.rma ? ucx::AmProtocol::kEager
                                                                   : ucx::AmProtocol::kRendezvous;
  // Encoded straight into the peer plane's frame buffer.
  auto st = peers_.SendFrameFromLoop(
      send.node, wire::MessageType::kData,
      [&body](const wire::Header& header, std::vector<uint8_t>& out) {
        wire::EncodeDataFrame(header, body, out);
      },
      std::move(parts), std::move(keep), protocol, n.next_sequence(), memory);
  if (!st.ok()) {
    Finish(send, st);
    return;
  }
  n.Sent(id, std::move(send));
}

void RemotePath::PeerTransport::SendControl(const std::string& node, wire::MessageType type,
                                            absl::Span<const uint8_t> body) {
  // A failure comes back as the node going down (OnNodeDown).
  (void)peers_.SendDataFromLoop(node, type, body, {}, {}, ucx::AmProtocol::kEager, 0);
}

void RemotePath::PeerTransport::Drop(const std::string& node, const std::string& why) {
  peers_.DropFromLoop(node, why);
}

uint64_t RemotePath::in_flight() const {
  uint64_t n = 0;
  for (const auto& [name, link] : links_) n += link->in_flight();
  return n;
}

uint64_t RemotePath::handles_open() const { return handles_->handles_open(); }
uint64_t RemotePath::rma_served() const { return rma_->served(); }
uint64_t RemotePath::rma_served_bytes() const { return rma_->served_bytes(); }
uint64_t RemotePath::bounce_allocations() const { return bounce_->allocations(); }
uint64_t RemotePath::bounce_idle_device_bytes() const { return bounce_->idle_device_bytes(); }
uint64_t RemotePath::bounce_idle_pinned_bytes() const { return bounce_->idle_pinned_bytes(); }
uint64_t RemotePath::bounce_in_use_device_bytes() const { return bounce_->in_use_device_bytes(); }
uint64_t RemotePath::bounce_in_use_pinned_bytes() const { return bounce_->in_use_pinned_bytes(); }

bool RemotePath::DirectWith(const std::string& node) const {
  return limits_.gpu_direct && peers_.PeerTakesCudaFromLoop(node);
}

NodeLink& RemotePath::LinkTo(const std::string& name) {
  std::unique_ptr<NodeLink>& link = last_link_.FindOrAdd(links_, name);
  if (!link) {
    link = std::make_unique<NodeLink>(
        name, next_generation_++,
        NodeLink::Limits{.max_in_flight = limits_.max_in_flight, .dead_after = limits_.dead_after},
        transport_, clock_, ack_batches_);
    link->connected = peers_.CheckUpFromLoop(name).ok();
  }
  return *link;
}

NodeLink* RemotePath::Live(const Outgoing& send) {
  NodeLink* link = FindLink(send.node);
  return link != nullptr && link->generation() == send.generation ? link : nullptr;
}

NodeLink* RemotePath::FindLink(const std::string& name) {
  std::unique_ptr<NodeLink>* link = last_link_.Find(links_, name);
  return link == nullptr ? nullptr : link->get();
}

void RemotePath::Drain(const std::string& node) {
  if (NodeLink* n = FindLink(node)) Drain(*n);
}

void RemotePath::Drain(NodeLink& n) {
  while (std::optional<Outgoing> next = n.TakeReady()) Transmit(n, *std::move(next));
}

void RemotePath::OnFrame(const std::string& node, const wire::Header& header,
                         absl::Span<const uint8_t> body, ucx::AmMessage& message) {
  switch (header.type) {
    case wire::MessageType::kData: {
      auto data = wire::DecodeDataView(body);  // views of `message.header`
      if (!data.ok()) {
        Malformed(node, header, data.status());
        return;
      }
      OnData(node, header.sequence, *data, message);
      return;
    }
    case wire::MessageType::kDataAck: {
      auto ack = wire::DecodeAck(body);
      if (!ack.ok()) {
        Malformed(node, header, ack.status());
        return;
      }
      OnAck(node, *ack);
      return;
    }
    case wire::MessageType::kDataAcks: {
      auto ids = wire::DecodeAcks(body, std::move(acked_));
      if (!ids.ok()) {
        Malformed(node, header, ids.status());
        return;
      }
      acked_ = *std::move(ids);
      OnAcks(node, acked_);
      return;
    }
    case wire::MessageType::kDataCancel: {
      auto id = wire::DecodeCancel(body);
      if (!id.ok()) {
        Malformed(node, header, id.status());
        return;
      }
      OnCancel(node, *id);
      return;
    }
    case wire::MessageType::kDataHandleAnswer: {
      auto answer = wire::DecodeAck(body);
      if (!answer.ok()) {
        Malformed(node, header, answer.status());
        return;
      }
      handles_->OnAnswer(node, *answer);
      return;
    }
    case wire::MessageType::kDataHandleClosed: {
      auto handle = wire::DecodeHandleClosed(body);
      if (!handle.ok()) {
        Malformed(node, header, handle.status());
        return;
      }
      handles_->OnClosed(node, *handle);
      return;
    }
    default:
      return;
  }
}

void RemotePath::Malformed(const std::string& node, const wire::Header& header,
                           const absl::Status& why) {
  // Dropping one frame would leave its sender waiting for an answer and
  // every later data frame from that node behind the gap in the sequence:
  // drop the connection instead, which fails what is in flight both ways.
  transport_.Drop(node,
                  absl::StrCat("protocol error: a malformed ", wire::MessageTypeName(header.type),
                               " frame (", why.message(), ")"));
}

std::shared_ptr<Incoming> RemotePath::NewIncoming() {
  if (spare_incoming_.empty()) return std::make_shared<Incoming>();
  std::shared_ptr<Incoming> in = std::move(spare_incoming_.back());
  spare_incoming_.pop_back();
  return in;
}

void RemotePath::Recycle(std::shared_ptr<Incoming> in) {
  // Only one nobody else holds (parked, landing, early, a chunk): a few
  // spares cover a stream, since each lands before the next arrives.
  constexpr size_t kSpares = 8;
  if (in.use_count() == 1 && spare_incoming_.size() < kSpares) {
    in->pending.reset();  // a rendezvous message's hold on the sender
    in->data.Reset();     // UCX's descriptor, when held
    in->source.reset();
    spare_incoming_.push_back(std::move(in));
  }
}

void RemotePath::OnData(const std::string& node, uint64_t sequence, const wire::DataView& body,
                        ucx::AmMessage& message) {
  NodeLink& n = LinkTo(node);
  // Every field is set: `in` may be a recycled one.
  std::shared_ptr<Incoming> in = NewIncoming();
  in->node = node;
  in->generation = n.generation();
  in->message_id = body.message_id;
  in->tag = body.tag;
  in->from.assign(body.from.data(), body.from.size());
  in->to.assign(body.to.data(), body.to.size());
  in->data = std::move(message.data);
  in->pending = std::move(message.pending);
  in->bytes = in->pending ? in->pending->length() : in->data.size();
  in->chunked = body.total != 0;
  in->total = in->chunked ? body.total : in->bytes;
  in->offset = body.offset;
  in->first_id = in->chunked ? body.first_id : body.message_id;
  in->handle.assign(body.handle.data(), body.handle.size());
  in->bus_id.assign(body.bus_id.data(), body.bus_id.size());
  in->handle_offset = body.handle.empty() ? 0 : body.handle_offset;
  in->handed = 0;
  in->window = body.window;
  in->probe = !body.handle.empty() && body.probe;     // `source`: null, new or recycled
  if (!body.handle.empty()) in->total = body.length;  // no payload: the bytes stay on the sender
  if (in->chunked && (in->bytes > body.total - body.offset || in->bytes > Chunking::kChunk)) {
    RefuseFromLoop(*in, absl::InvalidArgumentError("a chunk past the end of its message"));
  } else if (n.Receive(sequence, in, [this](const std::shared_ptr<Incoming>& m) { Dispatch(m); }) ==
             NodeLink::Arrival::kRepeated) {
    RefuseFromLoop(*in, absl::InvalidArgumentError(
                            absl::StrCat("data frame sequence ", sequence, " repeated")));
  }
  Recycle(std::move(in));  // kept only if nothing holds it (an early one is held)
}

bool RemotePath::LandNowFromLoop(const Incoming& message, const Region& region, uint8_t* into) {
  AXON_DCHECK_ON_LOOP();
  if (!HostEager::LandsAtOnce(message, region)) return false;
  if (!message.data.empty()) std::memcpy(into, message.data.data(), message.data.size());
  Ack(message, absl::OkStatus());
  return true;
}

void RemotePath::LandFromLoop(std::shared_ptr<Incoming> message, std::shared_ptr<Region> region,
                              uint8_t* into, std::function<void(absl::Status)> done) {
  AXON_DCHECK_ON_LOOP();
  if (message->chunked) {  // chunk 0: it and the others, each acknowledged as it lands
    chunking_->Land(std::move(message), std::move(region), into, std::move(done));
    return;
  }
  Transfer& kind = LandKind(*message, *region);
  kind.Land(
      message, std::move(region), into,
      [this, message, done = std::move(done)](absl::Status st) { Landed(*message, st, done); });
}

void RemotePath::Landed(const Incoming& message, const absl::Status& st,
                        const std::function<void(absl::Status)>& done) {
  Ack(message, st);
  done(st);
}

void RemotePath::ServeRmaFromLoop(const Incoming& message, const wire::RmaRequest& request,
                                  std::shared_ptr<Region> window_region, uint8_t* window,
                                  std::function<void(absl::Status)> done) {
  AXON_DCHECK_ON_LOOP();
  rma_->Serve(message, request, std::move(window_region), window, std::move(done));
}

void RemotePath::RefuseFromLoop(const Incoming& message, const absl::Status& why) {
  AXON_DCHECK_ON_LOOP();
  if (message.chunked && message.offset == 0 && chunking_->Refuse(message, why)) return;
  Ack(message, why);
}

void RemotePath::OnCancel(const std::string& node, uint64_t message_id) {
  const absl::Status withdrawn = absl::CancelledError("the sender withdrew the message");
  NodeLink* n = FindLink(node);
  // Not queued (landing, or answered already): its ack is on its way.
  if (n == nullptr || !hooks_.withdraw(node, message_id)) return;
  Incoming withdrawn_one;  // what the ack needs of it
  withdrawn_one.node = node;
  withdrawn_one.generation = n->generation();
  withdrawn_one.message_id = message_id;
  // Chunk 0 of a chunked message: the engine held it; answer it and the rest.
  if (chunking_->Refuse(withdrawn_one, withdrawn)) return;
  Ack(withdrawn_one, withdrawn);
}

void RemotePath::DropSessionFromLoop(uint64_t session) {
  AXON_DCHECK_ON_LOOP();
  const absl::Status closed = absl::CancelledError("the client's session closed");
  bounce_->DropSession(session, closed);
  for (auto& [name, link] : links_) link->DropSession(session, closed);
}

bool RemotePath::AbortFromLoop(uint64_t session, uint64_t op_id, const absl::Status& why) {
  AXON_DCHECK_ON_LOOP();
  if (bounce_->Withdraw(session, op_id, why)) return true;
  for (auto& [name, link] : links_) {
    if (link->TakeWaiting(session, op_id)) {
      hooks_.complete(session, op_id, why, 0, 0, /*quiet=*/false);
      return true;
    }
  }
  bool found = false;  // a chunked send has one entry per chunk, on one link
  for (auto& [name, link] : links_) found = link->Withdraw(session, op_id, why) || found;
  return found;
}

void RemotePath::OnNodeUp(const std::string& node) {
  NodeLink* n = FindLink(node);
  if (n == nullptr) return;
  n->connected = true;
  if (n->Release(NodeLink::kConnectingHold)) Drain(*n);
}

void RemotePath::OnNodeDown(const std::string& node, const std::string& why) {
  auto it = links_.find(node);
  if (it == links_.end()) return;
  // A new connection starts a new link; this one goes, after failing its
  // sends (their completions may look the node up and must not find it).
  std::unique_ptr<NodeLink> link = std::move(it->second);
  last_link_.Forget();
  links_.erase(it);
  const absl::Status gone = absl::UnavailableError(absl::StrCat("node ", node, " is down: ", why));
  // What was sent fails, in the order sent: it may or may not have arrived.
  // What never left goes on the next connection, when the node is connected
  // on first use and this connection had been up (an idle close, or a
  // member's connection lost): a connection that never came up fails its
  // sends, so they do not wait on one redial after another.
  std::deque<Outgoing> waiting = link->TakeAllWaiting();
  for (const Outgoing& send : link->TakeUnanswered()) Finish(send, gone);
  if (!waiting.empty() && link->connected && peers_.ConnectFromLoop(node)) {
    NodeLink& next = LinkTo(node);
    next.Hold(NodeLink::kConnectingHold);
    for (Outgoing& send : waiting) next.Wait(std::move(send));
  } else {
    for (const Outgoing& send : waiting) Finish(send, gone);
  }
  handles_->NodeDown(node);
  chunking_->NodeDown(node, gone);
  hooks_.node_down(node);
}

}  // namespace axon::daemon
