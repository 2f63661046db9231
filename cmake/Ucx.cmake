# Locates UCX and defines the imported target axon::ucx.
#
# Three ways, in this order:
#   AXON_UCX_HERMETIC=ON  build UCX from a pinned tarball (cmake/UcxHermetic.cmake),
#                         which then sets AXON_UCX_ROOT;
#   AXON_UCX_ROOT=PREFIX  any install prefix with include/ucp/api/ucp.h and lib/libucp.so
#                         (scripts/setup-deps.sh puts PyPI's libucx-cu13 here);
#   neither               pkg-config's 'ucx' (e.g. Debian's libucx-dev).
# Only the daemon links UCX; libaxon never does.
if(AXON_UCX_HERMETIC)
  include(${CMAKE_CURRENT_LIST_DIR}/UcxHermetic.cmake)
endif()

add_library(axon_ucx INTERFACE)
add_library(axon::ucx ALIAS axon_ucx)
if(AXON_UCX_ROOT)
  find_path(UCX_INCLUDE_DIR ucp/api/ucp.h PATHS ${AXON_UCX_ROOT}/include NO_DEFAULT_PATH REQUIRED)
  foreach(lib ucp uct ucs)
    find_library(UCX_${lib}_LIBRARY ${lib} PATHS ${AXON_UCX_ROOT}/lib NO_DEFAULT_PATH REQUIRED)
    target_link_libraries(axon_ucx INTERFACE ${UCX_${lib}_LIBRARY})
  endforeach()
  target_include_directories(axon_ucx SYSTEM INTERFACE ${UCX_INCLUDE_DIR})
  # Binaries find this UCX without LD_LIBRARY_PATH.
  target_link_options(axon_ucx INTERFACE "-Wl,-rpath,${AXON_UCX_ROOT}/lib")
  set(AXON_UCX_LIBDIR ${AXON_UCX_ROOT}/lib)
  set(AXON_UCX_SOURCE "prefix ${AXON_UCX_ROOT}")
else()
  pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx)
  target_link_libraries(axon_ucx INTERFACE PkgConfig::UCX)
  set(UCX_INCLUDE_DIR ${UCX_INCLUDEDIR})
  set(AXON_UCX_LIBDIR ${UCX_LIBDIR})
  set(AXON_UCX_SOURCE "pkg-config")
endif()

file(STRINGS ${UCX_INCLUDE_DIR}/ucp/api/ucp_version.h _ucx_ver REGEX "define UCP_API_(MAJOR|MINOR) ")
string(REGEX MATCH "MAJOR +([0-9]+)" _m "${_ucx_ver}")
set(_major ${CMAKE_MATCH_1})
string(REGEX MATCH "MINOR +([0-9]+)" _m "${_ucx_ver}")
set(AXON_UCX_VERSION "${_major}.${CMAKE_MATCH_1}")
if(AXON_UCX_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "UCX ${AXON_UCX_VERSION} is too old: axon needs UCX 1.13 or newer")
endif()

# ucx_perftest from the same UCX is the baseline of the benchmarks.
find_program(AXON_UCX_PERFTEST ucx_perftest
  HINTS ${AXON_UCX_ROOT}/bin ${AXON_UCX_LIBDIR}/../bin NO_DEFAULT_PATH)
