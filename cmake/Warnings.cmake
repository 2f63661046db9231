# Compiler warnings (errors with AXON_WERROR) and sanitizer flags, applied to
# every axon target through the interface library axon::build_flags.
add_library(axon_build_flags INTERFACE)
add_library(axon::build_flags ALIAS axon_build_flags)
target_compile_options(axon_build_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Wimplicit-fallthrough -Wformat=2
  # GCC 12 warns on designated initializers that leave members at their defaults.
  -Wno-missing-field-initializers>)
if(AXON_WERROR)
  target_compile_options(axon_build_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()

# -g1: line tables, all a sanitizer's report needs; full debug info made the
# sanitizer builds, CI's longest steps, a tenth slower.
if(AXON_SANITIZE STREQUAL "address")
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1)
elseif(AXON_SANITIZE STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer -g1)
elseif(NOT AXON_SANITIZE STREQUAL "")
  message(FATAL_ERROR "AXON_SANITIZE must be '', 'address' or 'thread', not '${AXON_SANITIZE}'")
endif()
# Sanitizer flags alone, for code that must be instrumented but is not ours to
# keep warning-free (generated protobuf code).
add_library(axon_sanitize INTERFACE)
add_library(axon::sanitize ALIAS axon_sanitize)
if(_san)
  target_compile_options(axon_sanitize INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${_san}>)
  target_link_options(axon_sanitize INTERFACE ${_san})
endif()
if(AXON_SANITIZE STREQUAL "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # Asio's headers use std::atomic_thread_fence, which GCC warns TSan cannot see.
  target_compile_options(axon_sanitize INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Wno-tsan>)
endif()
target_link_libraries(axon_build_flags INTERFACE axon_sanitize)
