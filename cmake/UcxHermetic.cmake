# UcxHermetic.cmake — build a pinned UCX from a source tarball at configure time.
#
# include()d from the top-level CMakeLists.txt when AXON_UCX_HERMETIC=ON.
# It downloads (or takes a local copy of) the pinned UCX source tarball,
# checks its SHA-256, runs scripts/build-ucx.sh at *configure* time so the
# libraries exist before the rest of the project is configured, and then sets
#
#   AXON_UCX_ROOT = ${CMAKE_BINARY_DIR}/_deps/ucx-hermetic
#
# (include/, lib/libucp.so, lib/ucx/libuct_cuda.so, bin/ucx_info,
# lib/pkgconfig/ucx.pc, lib/cmake/ucx/) so that the project's normal
# "find UCX under AXON_UCX_ROOT" logic picks it up. That prefix is also
# prepended to CMAKE_PREFIX_PATH and ENV{PKG_CONFIG_PATH}.
#
# Cache variables:
#
#   AXON_UCX_TARBALL_URL     URL of the UCX source tarball. Default: Debian
#                            bookworm's orig tarball of UCX 1.13.1
#                            (https://deb.debian.org/debian/pool/main/u/ucx/ucx_1.13.1.orig.tar.xz;
#                            Debian ships .tar.xz, there is no .orig.tar.gz).
#   AXON_UCX_TARBALL_SHA256  Expected SHA-256 of the tarball, checked for the
#                            download *and* for AXON_UCX_TARBALL. Pinned to the
#                            value in Debian's ucx_1.13.1-1.dsc
#                            (Checksums-Sha256), re-verified by hashing the file.
#                            Change it together with the URL/tarball.
#   AXON_UCX_TARBALL         Local path of the tarball (default empty). When
#                            set, it is used instead of downloading (offline
#                            builds); its hash must still match.
#   AXON_UCX_CUDA_HOME       CUDA toolkit root to build UCX's CUDA transports
#                            against (default empty: derived from
#                            CMAKE_CUDA_COMPILER / CUDAToolkit_BIN_DIR when the
#                            project found them, otherwise build-ucx.sh uses
#                            $CUDA_HOME, nvcc on PATH, or /usr/local/cuda).
#                            "none" builds UCX without CUDA.
#
# Build log: ${CMAKE_BINARY_DIR}/_deps/ucx-hermetic-build.log (full configure
# and make output); scratch tree in ${CMAKE_BINARY_DIR}/_deps/ucx-hermetic.src.
# Re-configuring is cheap: build-ucx.sh skips the build while the stamp in the
# prefix matches the tarball hash and CUDA_HOME.
#
# Host requirements for the first configure: bash, a C compiler, make, tar/xz,
# and autoconf/automake/libtool (installed via apt-get when running as root);
# with CUDA and no nvml.h in the toolkit also python3 -m pip and access to
# PyPI (nvidia-nvml-dev). See scripts/build-ucx.sh for details.

include_guard(GLOBAL)
if(CMAKE_VERSION VERSION_LESS 3.20)
  message(FATAL_ERROR "UcxHermetic.cmake needs CMake >= 3.20 (cmake_path)")
endif()

set(AXON_UCX_TARBALL_URL
    "https://deb.debian.org/debian/pool/main/u/ucx/ucx_1.13.1.orig.tar.xz"
    CACHE STRING "URL of the pinned UCX source tarball")
set(AXON_UCX_TARBALL_SHA256
    "1a88e09ca1b406c046a469c2ae271d2c330050b5664c0bcd9890e26c6ef09f3c"
    CACHE STRING "Expected SHA-256 of the UCX source tarball")
set(AXON_UCX_TARBALL ""
    CACHE FILEPATH "Local UCX source tarball; replaces the download of AXON_UCX_TARBALL_URL when set")
set(AXON_UCX_CUDA_HOME ""
    CACHE PATH "CUDA toolkit root for UCX's CUDA transports (empty: auto, 'none': no CUDA)")

set(_axon_ucx_script "${CMAKE_CURRENT_LIST_DIR}/../scripts/build-ucx.sh")
cmake_path(NORMAL_PATH _axon_ucx_script)
set(_axon_ucx_deps "${CMAKE_BINARY_DIR}/_deps")
set(_axon_ucx_prefix "${_axon_ucx_deps}/ucx-hermetic")
set(_axon_ucx_log "${_axon_ucx_deps}/ucx-hermetic-build.log")
string(TOLOWER "${AXON_UCX_TARBALL_SHA256}" _axon_ucx_sha256)

if(NOT EXISTS "${_axon_ucx_script}")
  message(FATAL_ERROR "UcxHermetic: build script not found: ${_axon_ucx_script}")
endif()
if(NOT _axon_ucx_sha256 MATCHES "^[0-9a-f]+$")
  message(FATAL_ERROR "UcxHermetic: AXON_UCX_TARBALL_SHA256 must be a hex SHA-256, got '${AXON_UCX_TARBALL_SHA256}'")
endif()
file(MAKE_DIRECTORY "${_axon_ucx_deps}")

# ---------------------------------------------------------------- tarball
if(AXON_UCX_TARBALL)
  get_filename_component(_axon_ucx_tarball "${AXON_UCX_TARBALL}" ABSOLUTE)
  if(NOT EXISTS "${_axon_ucx_tarball}" OR IS_DIRECTORY "${_axon_ucx_tarball}")
    message(FATAL_ERROR "UcxHermetic: AXON_UCX_TARBALL='${AXON_UCX_TARBALL}' is not a file")
  endif()
  file(SHA256 "${_axon_ucx_tarball}" _axon_ucx_actual)
  if(NOT _axon_ucx_actual STREQUAL _axon_ucx_sha256)
    message(FATAL_ERROR
      "UcxHermetic: SHA-256 mismatch for AXON_UCX_TARBALL=${_axon_ucx_tarball}\n"
      "  expected (AXON_UCX_TARBALL_SHA256): ${_axon_ucx_sha256}\n"
      "  actual:                             ${_axon_ucx_actual}")
  endif()
  message(STATUS "UcxHermetic: using local tarball ${_axon_ucx_tarball} (sha256 ok)")
else()
  get_filename_component(_axon_ucx_name "${AXON_UCX_TARBALL_URL}" NAME)
  set(_axon_ucx_tarball "${_axon_ucx_deps}/ucx-hermetic-dl/${_axon_ucx_name}")
  set(_axon_ucx_have FALSE)
  if(EXISTS "${_axon_ucx_tarball}")
    file(SHA256 "${_axon_ucx_tarball}" _axon_ucx_actual)
    if(_axon_ucx_actual STREQUAL _axon_ucx_sha256)
      set(_axon_ucx_have TRUE)
      message(STATUS "UcxHermetic: using previously downloaded ${_axon_ucx_tarball} (sha256 ok)")
    else()
      file(REMOVE "${_axon_ucx_tarball}")
    endif()
  endif()
  if(NOT _axon_ucx_have)
    message(STATUS "UcxHermetic: downloading ${AXON_UCX_TARBALL_URL}")
    file(DOWNLOAD "${AXON_UCX_TARBALL_URL}" "${_axon_ucx_tarball}"
         EXPECTED_HASH SHA256=${_axon_ucx_sha256}
         TLS_VERIFY ON
         INACTIVITY_TIMEOUT 60
         TIMEOUT 600
         STATUS _axon_ucx_status)
    list(GET _axon_ucx_status 0 _axon_ucx_code)
    if(NOT _axon_ucx_code EQUAL 0)
      list(GET _axon_ucx_status 1 _axon_ucx_msg)
      file(REMOVE "${_axon_ucx_tarball}")
      message(FATAL_ERROR
        "UcxHermetic: could not download ${AXON_UCX_TARBALL_URL}: ${_axon_ucx_msg} (${_axon_ucx_code})\n"
        "For offline builds pass -DAXON_UCX_TARBALL=/path/to/${_axon_ucx_name} "
        "(SHA-256 ${_axon_ucx_sha256})")
    endif()
  endif()
  # Belt and braces: verify again what is on disk.
  file(SHA256 "${_axon_ucx_tarball}" _axon_ucx_actual)
  if(NOT _axon_ucx_actual STREQUAL _axon_ucx_sha256)
    message(FATAL_ERROR "UcxHermetic: SHA-256 mismatch for ${_axon_ucx_tarball}: "
                        "expected ${_axon_ucx_sha256}, got ${_axon_ucx_actual}")
  endif()
endif()

# ---------------------------------------------------------------- CUDA_HOME
set(_axon_ucx_cuda "${AXON_UCX_CUDA_HOME}")
if(NOT _axon_ucx_cuda)
  if(CMAKE_CUDA_COMPILER)
    get_filename_component(_axon_ucx_cuda "${CMAKE_CUDA_COMPILER}" DIRECTORY)
    get_filename_component(_axon_ucx_cuda "${_axon_ucx_cuda}" DIRECTORY)
  elseif(CUDAToolkit_BIN_DIR)
    get_filename_component(_axon_ucx_cuda "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  endif()
endif()

# ---------------------------------------------------------------- build
find_program(AXON_UCX_BASH bash REQUIRED)
set(_axon_ucx_cmd "${AXON_UCX_BASH}" "${_axon_ucx_script}" "${_axon_ucx_tarball}" "${_axon_ucx_prefix}")
if(_axon_ucx_cuda)
  list(APPEND _axon_ucx_cmd "${_axon_ucx_cuda}")
endif()

message(STATUS "UcxHermetic: building UCX into ${_axon_ucx_prefix} (no-op when up to date, else takes minutes; log: ${_axon_ucx_log})")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env "UCX_BUILD_LOG=${_axon_ucx_log}" ${_axon_ucx_cmd}
  RESULT_VARIABLE _axon_ucx_rc
  COMMAND_ECHO NONE)
if(NOT _axon_ucx_rc EQUAL 0)
  list(JOIN _axon_ucx_cmd " " _axon_ucx_cmd_str)
  message(FATAL_ERROR
    "UcxHermetic: scripts/build-ucx.sh failed (${_axon_ucx_rc}).\n"
    "  command: ${_axon_ucx_cmd_str}\n"
    "  log:     ${_axon_ucx_log}")
endif()
if(NOT EXISTS "${_axon_ucx_prefix}/lib/libucp.so" OR NOT EXISTS "${_axon_ucx_prefix}/include/ucp/api/ucp.h")
  message(FATAL_ERROR "UcxHermetic: build-ucx.sh succeeded but ${_axon_ucx_prefix} has no lib/libucp.so or "
                      "include/ucp/api/ucp.h (log: ${_axon_ucx_log})")
endif()

# Re-run configure when the recipe or the pin changes.
set_property(DIRECTORY "${CMAKE_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${_axon_ucx_script}" "${CMAKE_CURRENT_LIST_FILE}")

set(AXON_UCX_ROOT "${_axon_ucx_prefix}")
list(PREPEND CMAKE_PREFIX_PATH "${_axon_ucx_prefix}")
if(DEFINED ENV{PKG_CONFIG_PATH} AND NOT "$ENV{PKG_CONFIG_PATH}" STREQUAL "")
  set(ENV{PKG_CONFIG_PATH} "${_axon_ucx_prefix}/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
else()
  set(ENV{PKG_CONFIG_PATH} "${_axon_ucx_prefix}/lib/pkgconfig")
endif()
message(STATUS "UcxHermetic: AXON_UCX_ROOT=${AXON_UCX_ROOT}")
