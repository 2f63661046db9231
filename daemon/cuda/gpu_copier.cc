#include "daemon/cuda/gpu_copier.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/cuda/driver.h"
#include "common/log.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon::daemon {

#ifdef AXON_HAVE_CUDA
namespace {

absl::Status Failed(cudaError_t err, absl::string_view what) {
  (void)cudaGetLastError();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

}  // namespace

GpuCopier::~GpuCopier() {
  for (Waiting& w : waiting_) {
    (void)cudaEventSynchronize(static_cast<cudaEvent_t>(w.event));
    (void)cudaEventDestroy(static_cast<cudaEvent_t>(w.event));
  }
  for (auto& [device, events] : spare_events_) {
    (void)cudaSetDevice(device);
    for (void* e : events) (void)cudaEventDestroy(static_cast<cudaEvent_t>(e));
  }
  for (auto& [device, stream] : streams_) {
    (void)cudaSetDevice(device);
    (void)cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    (void)cudaStreamDestroy(static_cast<cudaStream_t>(stream));
  }
}

absl::Status GpuCopier::Stream(int device, void** stream) {
  if (auto st = axon::cuda::UseDevice(device); !st.ok()) return st;
  auto it = streams_.find(device);
  if (it == streams_.end()) {
    cudaStream_t s;
    if (cudaError_t err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        err != cudaSuccess) {
      return Failed(err, "creating a copy stream");
    }
    it = streams_.emplace(device, s).first;
    if (!axon::cuda::SharedByMps(device)) {
      spdlog::info(
          "GPU {} is not shared through MPS: axond's copies and other processes' GPU work "
          "take turns by time slice, about 140 us per switch on an H100 (README: GPU sharing)",
          device);
    }
  }
  *stream = it->second;
  return absl::OkStatus();
}

absl::Status GpuCopier::Queue(int device, void* stream, void* to, const void* from, size_t bytes) {
  if (cudaError_t err =
          cudaMemcpyAsync(to, from, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream));
      err != cudaSuccess) {
    return Failed(err, absl::StrCat("copying ", bytes, " bytes on GPU ", device));
  }
  return absl::OkStatus();
}

absl::Status GpuCopier::Copy(int device, void* to, const void* from, size_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  void* stream;
  if (auto st = Stream(device, &stream); !st.ok()) return st;
  if (auto st = Queue(device, stream, to, from, bytes); !st.ok()) return st;
  ++copies_;
  bytes_ += bytes;
  return absl::OkStatus();
}

absl::Status GpuCopier::CopyBatch(int device, absl::Span<void* const> to,
                                  absl::Span<const void* const> from,
                                  absl::Span<const size_t> bytes) {
#if CUDART_VERSION >= 13000
  if (to.size() > 1 && batch_supported_) {
    void* stream;
    if (auto st = Stream(device, &stream); !st.ok()) return st;
    // In stream order, like the single copies around it.
    cudaMemcpyAttributes attributes{};
    attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t first = 0;
    const cudaError_t err =
        cudaMemcpyBatchAsync(to.data(), from.data(), bytes.data(), to.size(), &attributes, &first,
                             1, static_cast<cudaStream_t>(stream));
    if (err == cudaSuccess) {
      copies_ += to.size();
      for (size_t b : bytes) bytes_ += b;
      return absl::OkStatus();
    }
    // A driver or a kind of memory the batch call does not take: copy one
    // by one from now on (nothing of the batch was queued).
    (void)cudaGetLastError();
    batch_supported_ = false;
  }
#endif
  for (size_t i = 0; i < to.size(); ++i) {
    if (auto st = Copy(device, to[i], from[i], bytes[i]); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status GpuCopier::Gather(int device, absl::Span<void* const> to,
                               absl::Span<const void* const> from, absl::Span<const size_t> bytes) {
  if (to.size() < 2) return CopyBatch(device, to, from, bytes);
  void* stream;
  if (auto st = Stream(device, &stream); !st.ok()) return st;
  pieces_.resize(gather::kMaxPieces);
  gather::Piece* pieces = pieces_.data();
  size_t n = 0;
  auto launch = [&]() -> absl::Status {
    if (n == 0) return absl::OkStatus();
    const size_t count = std::exchange(n, 0);
    if (gather_supported_) {
      const int err = gather::Launch(pieces, count, stream);
      if (err == cudaSuccess) return absl::OkStatus();
      // A driver older than the kernel's 32 KiB parameters (CUDA 12.1), or a
      // GPU without it: the copy engines from now on, these pieces too.
      (void)cudaGetLastError();
      gather_supported_ = false;
      spdlog::warn("GPU {}: the gather kernel did not launch ({}); small copies go one by one",
                   device, cudaGetErrorString(static_cast<cudaError_t>(err)));
    }
    for (size_t i = 0; i < count; ++i) {
      if (auto st = Queue(device, stream, pieces[i].to, pieces[i].from, pieces[i].bytes);
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  };
  for (size_t i = 0; i < to.size(); ++i) {
    if (bytes[i] > kGatherMaxBlock) {
      if (auto st = Copy(device, to[i], from[i], bytes[i]); !st.ok()) return st;
      continue;
    }
    for (size_t at = 0; at < bytes[i]; at += gather::kMaxPieceBytes) {
      if (n == gather::kMaxPieces) {
        if (auto st = launch(); !st.ok()) return st;
      }
      pieces[n++] = {static_cast<char*>(to[i]) + at, static_cast<const char*>(from[i]) + at,
                     std::min<uint64_t>(gather::kMaxPieceBytes, bytes[i] - at)};
    }
    ++copies_;
    bytes_ += bytes[i];
  }
  return launch();
}

void GpuCopier::Then(int device, absl::AnyInvocable<void(absl::Status)> done) {
  void* stream;
  if (auto st = Stream(device, &stream); !st.ok()) return done(st);
  cudaEvent_t event;
  std::vector<void*>& spare = spare_events_[device];
  if (!spare.empty()) {
    event = static_cast<cudaEvent_t>(spare.back());
    spare.pop_back();
  } else if (cudaError_t err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
             err != cudaSuccess) {
    return done(Failed(err, absl::StrCat("creating a copy event on GPU ", device)));
  }
  if (cudaError_t err = cudaEventRecord(event, static_cast<cudaStream_t>(stream));
      err != cudaSuccess) {
    spare.push_back(event);
    return done(Failed(err, absl::StrCat("recording a copy event on GPU ", device)));
  }
  waiting_.push_back({device, event, std::move(done)});
}

bool GpuCopier::Poll() {
  bool ran = false;
  // Per device, batches finish in order, and their callbacks must run in
  // that order too (the staging path posts a send's chunk 0 before its
  // chunk 1 this way). A later batch's event may be done by the time it is
  // queried although an earlier one of its device was not when queried a
  // moment before: once one is not ready, its device's later ones wait.
  // Across devices, any order.
  absl::InlinedVector<int, 4> blocked;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (std::find(blocked.begin(), blocked.end(), it->device) != blocked.end()) {
      ++it;
      continue;
    }
    const cudaError_t state = cudaEventQuery(static_cast<cudaEvent_t>(it->event));
    if (state == cudaErrorNotReady) {
      blocked.push_back(it->device);
      ++it;
      continue;
    }
    absl::Status result = state == cudaSuccess ? absl::OkStatus() : Failed(state, "a GPU copy");
    spare_events_[it->device].push_back(it->event);
    auto done = std::move(it->done);
    it = waiting_.erase(it);
    done(std::move(result));  // may queue more (iterators of a deque: restart)
    ran = true;
    it = waiting_.begin();
    blocked.clear();
  }
  return ran;
}

#else  // no CUDA toolkit

GpuCopier::~GpuCopier() = default;
absl::Status GpuCopier::Stream(int, void**) {
  return absl::UnimplementedError("axon was built without CUDA");
}
absl::Status GpuCopier::Copy(int device, void*, const void*, size_t) {
  void* stream;
  return Stream(device, &stream);
}
absl::Status GpuCopier::CopyBatch(int device, absl::Span<void* const>,
                                  absl::Span<const void* const>, absl::Span<const size_t>) {
  void* stream;
  return Stream(device, &stream);
}
absl::Status GpuCopier::Gather(int device, absl::Span<void* const> to,
                               absl::Span<const void* const> from, absl::Span<const size_t> bytes) {
  return CopyBatch(device, to, from, bytes);
}
void GpuCopier::Then(int device, absl::AnyInvocable<void(absl::Status)> done) {
  void* stream;
  done(Stream(device, &stream));
}
bool GpuCopier::Poll() { return false; }

#endif

}  // namespace axon::daemon
