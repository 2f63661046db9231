// What CUDA this process can use: whether axon was built with the toolkit and
// which devices and driver the runtime finds. Never fails: without a GPU or
// driver it says so in `detail`.
#pragma once

#include <string>

namespace axon {

struct CudaInfo {
  bool built_with_cuda = false;
  int device_count = 0;
  int driver_version = 0;  // e.g. 13000 for CUDA 13.0
  std::string detail;      // why there is no usable device, when device_count is 0
};

CudaInfo QueryCudaInfo();

}  // namespace axon
