# CUDA is optional: with AXON_CUDA=AUTO it is used when the toolkit is found.
# The daemon and libaxon link only the CUDA runtime; nothing needs a GPU at
# build time, and the GPU tests skip where no device is present.
set(AXON_HAVE_CUDA OFF)
if(NOT AXON_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    set(AXON_HAVE_CUDA ON)
  elseif(AXON_CUDA STREQUAL "ON")
    message(FATAL_ERROR "AXON_CUDA=ON but the CUDA toolkit was not found")
  endif()
endif()
add_library(axon_cuda INTERFACE)
add_library(axon::cuda ALIAS axon_cuda)
if(AXON_HAVE_CUDA)
  # Kernels: the daemon's gather copy and the tests' fill and checksum.
  if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER ${CUDAToolkit_NVCC_EXECUTABLE})
  endif()
  enable_language(CUDA)
  target_link_libraries(axon_cuda INTERFACE CUDA::cudart)
  target_compile_definitions(axon_cuda INTERFACE AXON_HAVE_CUDA=1)
endif()
# The GPUs the kernels are built for (H100/H200 are 90; PTX runs on newer).
set(AXON_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures of the kernels")
