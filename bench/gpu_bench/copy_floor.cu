// gpu-copy-floor: what one small device-to-device copy costs the host that
// issues it and waits for it, however it is issued and watched. A 64 B GPU
// tensor through axond is such a copy each way (GpuCopier: cudaMemcpyAsync,
// an event, polled by the UCX loop), so these figures are the floor under
// gpu-bench's 64 B round trip. Each row is the median of many; the table
// and JSON go to stdout. Without a CUDA device it says so and exits 0.
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

__global__ void Copy16(uint4* to, const uint4* from, int n) {
  const int i = static_cast<int>(threadIdx.x);
  if (i < n) to[i] = from[i];
}

template <typename Fn>
double MedianMicros(Fn fn, int n) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto start = Clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

bool Ok(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  std::fprintf(stderr, "gpu-copy-floor: %s: %s\n", what, cudaGetErrorString(err));
  return false;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("gpu-copy-floor: no CUDA device; nothing measured\n{\"rows\": []}\n");
    return 0;
  }
  constexpr size_t kBytes = 64;
  constexpr int kRuns = 20000;
  void *a = nullptr, *b = nullptr;
  uint32_t* flag = nullptr;
  cudaStream_t s;
  cudaEvent_t ev;
  if (!Ok(cudaMalloc(&a, 1 << 20), "cudaMalloc") || !Ok(cudaMalloc(&b, 1 << 20), "cudaMalloc") ||
      !Ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream") ||
      !Ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "event") ||
      !Ok(cudaHostAlloc(reinterpret_cast<void**>(&flag), 4096, cudaHostAllocMapped), "host flag")) {
    return 1;
  }
  // The driver's cuStreamWriteValue32 through the runtime (no link to
  // libcuda, so the program starts on a machine without a driver).
  void* device_flag = nullptr;
  using WriteValue = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  void* entry = nullptr;
  cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
  const cudaError_t looked_up = cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &entry,
                                                                 12000, cudaEnableDefault, &found);
#else
  const cudaError_t looked_up =
      cudaGetDriverEntryPoint("cuStreamWriteValue32", &entry, cudaEnableDefault, &found);
#endif
  const bool have_flag = cudaHostGetDevicePointer(&device_flag, flag, 0) == cudaSuccess &&
                         looked_up == cudaSuccess && found == cudaDriverEntryPointSuccess &&
                         entry != nullptr;
  const auto write_value = reinterpret_cast<WriteValue>(entry);
  volatile uint32_t* seen = flag;
  uint32_t seq = 0;
  auto* to = static_cast<uint4*>(b);
  const auto* from = static_cast<const uint4*>(a);
  auto memcpy_async = [&] { cudaMemcpyAsync(b, a, kBytes, cudaMemcpyDefault, s); };
  auto kernel = [&] { Copy16<<<1, 32, 0, s>>>(to, from, kBytes / 16); };
  auto until_event = [&] {
    cudaEventRecord(ev, s);
    while (cudaEventQuery(ev) == cudaErrorNotReady) {
    }
  };
  auto until_stream = [&] {
    while (cudaStreamQuery(s) == cudaErrorNotReady) {
    }
  };
  auto until_flag = [&] {
    write_value(s, reinterpret_cast<CUdeviceptr>(device_flag), ++seq, 0);
    while (*seen != seq) {
    }
  };
  for (int i = 0; i < 1000; ++i) {  // warm: lazy loading, the first launches
    memcpy_async();
    kernel();
  }
  cudaStreamSynchronize(s);

  struct Row {
    std::string name;
    double us;
  };
  std::vector<Row> rows;
  rows.push_back({"cudaMemcpyAsync call alone", MedianMicros(memcpy_async, 2000)});
  cudaStreamSynchronize(s);
  rows.push_back({"kernel launch call alone", MedianMicros(kernel, 2000)});
  cudaStreamSynchronize(s);
  rows.push_back(
      {"cudaEventQuery of a done event", MedianMicros([&] { cudaEventQuery(ev); }, kRuns)});
  rows.push_back({"cudaMemcpyAsync + event polled (axond's way)",
                  MedianMicros([&] { memcpy_async(), until_event(); }, kRuns)});
  rows.push_back({"cudaMemcpyAsync + stream polled",
                  MedianMicros([&] { memcpy_async(), until_stream(); }, kRuns)});
  rows.push_back({"kernel + event polled", MedianMicros([&] { kernel(), until_event(); }, kRuns)});
  rows.push_back(
      {"kernel + stream polled", MedianMicros([&] { kernel(), until_stream(); }, kRuns)});
  if (have_flag) {
    rows.push_back({"cudaMemcpyAsync + host flag written by the stream",
                    MedianMicros([&] { memcpy_async(), until_flag(); }, kRuns)});
    rows.push_back({"kernel + host flag written by the stream",
                    MedianMicros([&] { kernel(), until_flag(); }, kRuns)});
  }
  rows.push_back({"cudaMemcpy + cudaDeviceSynchronize", MedianMicros(
                                                            [&] {
                                                              cudaMemcpy(b, a, kBytes,
                                                                         cudaMemcpyDefault);
                                                              cudaDeviceSynchronize();
                                                            },
                                                            kRuns)});

  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("gpu-copy-floor: one %zu B device-to-device copy on %s, median of many, us\n", kBytes,
              prop.name);
  for (const Row& r : rows) std::printf("  %-52s %8.2f\n", r.name.c_str(), r.us);
  std::printf("{\"device\": \"%s\", \"bytes\": %zu, \"rows\": [", prop.name, kBytes);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::printf("%s{\"what\": \"%s\", \"us\": %.3f}", i ? ", " : "", rows[i].name.c_str(),
                rows[i].us);
  }
  std::printf("]}\n");
  cudaFreeHost(flag);
  cudaEventDestroy(ev);
  cudaStreamDestroy(s);
  cudaFree(a);
  cudaFree(b);
  return 0;
}
