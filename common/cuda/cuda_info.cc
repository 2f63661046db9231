#include "common/cuda/cuda_info.h"

#ifdef AXON_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace axon {

CudaInfo QueryCudaInfo() {
  CudaInfo info;
#ifdef AXON_HAVE_CUDA
  info.built_with_cuda = true;
  if (cudaError_t err = cudaDriverGetVersion(&info.driver_version); err != cudaSuccess) {
    info.driver_version = 0;
  }
  if (cudaError_t err = cudaGetDeviceCount(&info.device_count); err != cudaSuccess) {
    info.device_count = 0;
    info.detail = cudaGetErrorString(err);
  } else if (info.device_count == 0) {
    info.detail = "no CUDA device found";
  }
#else
  info.detail = "axon was built without the CUDA toolkit";
#endif
  return info;
}

}  // namespace axon
