// RingEngine, part: delivery. The engine carries out what the matcher
// decided: it moves a message's bytes to the receive or the area slot it met
// (a memcpy between host regions, the copy threads for large ones, the GPU
// otherwise; the remote path for a message from another node) and completes
// both sides.
#include <cstring>
#include <utility>
#include <vector>

#include "daemon/engine/ring_engine.h"

namespace axon::daemon {

void RingEngine::CopyOut(const Pending& send, uint8_t* into) {
  if (send.more.empty()) {  // the common case, on the hot path: no list of spans
    if (send.length > 0) std::memcpy(into, send.region->data() + send.offset, send.length);
    return;
  }
  for (absl::Span<const uint8_t> s : PartSpans(*send.region, send.offset, send.length, send.more)) {
    if (!s.empty()) std::memcpy(into, s.data(), s.size());
    into += s.size();
  }
}

template <typename Done>
void RingEngine::CopyThen(const Pending& send, const std::shared_ptr<Region>& to, uint8_t* into,
                          Done done) {
  if (CopyLocalNow(send, *to, into)) {
    done(absl::OkStatus());
    return;
  }
  CopyLocal(send, to, into, std::move(done));
}

template <typename Landed>
void RingEngine::LandThen(const std::shared_ptr<Incoming>& message,
                          const std::shared_ptr<Region>& region, uint8_t* into, Landed landed) {
  if (message->handed != 0) {  // a stand-in: the message is on another shard
    LandElsewhere(*message, region, into, std::move(landed));
    return;
  }
  if (remote_->LandNowFromLoop(*message, *region, into)) {
    landed(absl::OkStatus());
    return;
  }
  remote_->LandFromLoop(message, region, into, std::move(landed));
}

void RingEngine::Deliver(Pending& send, const Pending& receive) {
  uint8_t* into = receive.region->data() + receive.offset;
  if (send.incoming) {
    LandThen(send.incoming, receive.region, into,
             [this, session = receive.session, op_id = receive.op_id,
              length = send.incoming->length(), tag = send.incoming->tag](absl::Status st) {
               CompleteMessage(session, /*sent=*/false, op_id, std::move(st), length, tag);
             });
    // Kept only if nothing else holds it; a stand-in is not the remote path's.
    if (send.incoming->handed == 0) remote_->Recycle(std::move(send.incoming));
    return;
  }
  CopyThen(send, receive.region, into,
           [this, from = send.session, send_op = send.op_id, to = receive.session,
            receive_op = receive.op_id, length = send.length, tag = send.tag,
            quiet = send.quiet](absl::Status st) {
             CompleteMessage(from, /*sent=*/true, send_op, st, length, tag, quiet);
             CompleteMessage(to, /*sent=*/false, receive_op, st, length, tag);
           });
}

void RingEngine::LandInArea(const Pending& send, uint64_t owner,
                            const std::shared_ptr<Region>& area, uint8_t* into, uint64_t sequence) {
  if (send.incoming) {
    LandThen(send.incoming, area, into,
             [this, owner, sequence, length = send.length](absl::Status st) {
               if (st.ok()) Count(owner, /*sent=*/false, length);
               matcher_.Landed(owner, sequence, st.ok());
             });
    return;
  }
  CopyThen(send, area, into,
           [this, owner, sequence, from = send.session, op_id = send.op_id, length = send.length,
            tag = send.tag, quiet = send.quiet](absl::Status st) {
             if (st.ok()) Count(owner, /*sent=*/false, length);
             CompleteMessage(from, /*sent=*/true, op_id, st, length, tag, quiet);
             matcher_.Landed(owner, sequence, st.ok());
           });
}

void RingEngine::Announce(uint64_t session, const wire::Completion& arrival) {
  auto it = sessions_.find(session);
  if (it != sessions_.end()) Complete(*it->second, arrival);
}

bool RingEngine::CopyLocalNow(const Pending& send, const Region& to, uint8_t* into) {
  if (send.region->on_gpu() || to.on_gpu() || GpuDevice(*send.region, send.more) >= 0 ||
      (host_copier_ && host_copier_->Takes(send.length))) {
    return false;
  }
  CopyOut(send, into);
  return true;
}

void RingEngine::CopyLocal(const Pending& send, const std::shared_ptr<Region>& to, uint8_t* into,
                           absl::AnyInvocable<void(absl::Status)> done) {
  // The source's device; the target's when only the target is on a GPU.
  const int source = send.region->on_gpu() ? send.region->device() : -1;
  const int device = source >= 0    ? source
                     : to->on_gpu() ? to->device()
                                    : GpuDevice(*send.region, send.more);
  if (device < 0) {  // host to host
    if (host_copier_ && host_copier_->Takes(send.length)) {
      std::vector<std::shared_ptr<Region>> keep{to, send.region};
      for (const Part& p : send.more) keep.push_back(p.region);
      host_copier_->Copy(PartSpans(*send.region, send.offset, send.length, send.more), into,
                         std::move(keep), std::move(done));
      return;
    }
    CopyOut(send, into);
    done(absl::OkStatus());
    return;
  }
  // The GPU copies it: host pages pinned once, then one async copy per
  // part on the source's device (a peer copy when the target is another GPU).
  auto keep = std::make_shared<std::vector<std::shared_ptr<Region>>>();
  keep->push_back(to);
  keep->push_back(send.region);
  for (const Part& p : send.more) keep->push_back(p.region);
  if (auto st =
          CopyOnGpu(copier_, device, PartSpans(*send.region, send.offset, send.length, send.more),
                    *to, into, *keep);
      !st.ok()) {
    done(std::move(st));
    return;
  }
  copier_.Then(device, [keep, done = std::move(done)](absl::Status result) mutable {
    done(std::move(result));
  });
}

}  // namespace axon::daemon
