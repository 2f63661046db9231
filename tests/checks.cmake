# The checks that are not GoogleTest suites (included by tests/CMakeLists.txt
# whether or not the suites are built). Label 'unsanitized': what only the
# normal build has; scripts/test.sh runs just these there when the sanitizer
# builds run the rest.

# The systemd unit must pass `systemd-analyze verify` (skipped where the tool is
# missing). ExecStart is pointed at the binary just built. The normal build's.
if(NOT AXON_SANITIZE)
  add_test(NAME systemd_unit_verify
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/deploy/verify_systemd_unit.sh
                   ${PROJECT_SOURCE_DIR}/deploy/systemd $<TARGET_FILE:axond>)
  set_tests_properties(systemd_unit_verify PROPERTIES LABELS "unit;unsanitized"
                       SKIP_RETURN_CODE 77)
endif()

# libFuzzer target for the wire decoder, built with clang when it is present
# (the rest of axon may be built with gcc). CTest runs it for a bounded time.
# Not in sanitizer builds: it has ASan and UBSan of its own, and one run is enough.
find_program(AXON_CLANGXX NAMES clang++ clang++-14)
if(AXON_CLANGXX AND NOT AXON_SANITIZE)
  set(_fuzz ${CMAKE_CURRENT_BINARY_DIR}/wire_fuzz)
  get_target_property(_absl_inc absl::strings INTERFACE_INCLUDE_DIRECTORIES)
  add_custom_command(
    OUTPUT ${_fuzz}
    COMMAND ${AXON_CLANGXX} -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined
            -I${PROJECT_SOURCE_DIR} -I${PROJECT_BINARY_DIR}/common/include
            ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/wire_fuzz.cc
            ${PROJECT_SOURCE_DIR}/common/wire/header.cc
            ${PROJECT_SOURCE_DIR}/common/wire/handshake.cc
            ${PROJECT_SOURCE_DIR}/common/wire/data.cc
            ${PROJECT_SOURCE_DIR}/common/wire/call.cc
            ${PROJECT_SOURCE_DIR}/common/wire/session.cc
            ${PROJECT_SOURCE_DIR}/common/wire/window.cc
            ${PROJECT_SOURCE_DIR}/common/tensor/tensor_desc.cc
            ${PROJECT_SOURCE_DIR}/common/errno_status.cc
            ${PROJECT_SOURCE_DIR}/common/secrets.cc
            -o ${_fuzz} -labsl_strings -labsl_str_format_internal -labsl_status -labsl_statusor
            -labsl_strings_internal -labsl_int128 -labsl_raw_logging_internal -labsl_throw_delegate
            -labsl_cord -labsl_cord_internal -labsl_cordz_info -labsl_cordz_functions
            -labsl_cordz_handle -labsl_synchronization -labsl_time -labsl_time_zone
            -labsl_stacktrace -labsl_symbolize -labsl_base -labsl_spinlock_wait
            -labsl_malloc_internal -labsl_exponential_biased -labsl_debugging_internal
            -labsl_demangle_internal -labsl_graphcycles_internal -lcrypto
    DEPENDS fuzz/wire_fuzz.cc ${PROJECT_SOURCE_DIR}/common/wire/header.cc
            ${PROJECT_SOURCE_DIR}/common/wire/handshake.cc ${PROJECT_SOURCE_DIR}/common/wire/data.cc
            ${PROJECT_SOURCE_DIR}/common/wire/call.cc ${PROJECT_SOURCE_DIR}/common/wire/call.h
            ${PROJECT_SOURCE_DIR}/common/wire/session.cc ${PROJECT_SOURCE_DIR}/common/wire/session.h
            ${PROJECT_SOURCE_DIR}/common/wire/window.cc ${PROJECT_SOURCE_DIR}/common/wire/window.h
            ${PROJECT_SOURCE_DIR}/common/tensor/tensor_desc.cc
            ${PROJECT_SOURCE_DIR}/common/tensor/tensor_desc.h
    COMMENT "clang++ -fsanitize=fuzzer wire_fuzz")
  add_custom_target(wire_fuzz_target ALL DEPENDS ${_fuzz})
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/wire_fuzz_corpus)
  add_test(NAME wire_fuzz
           COMMAND ${_fuzz} -max_total_time=20 -rss_limit_mb=2048 -print_final_stats=1
                   ${CMAKE_CURRENT_BINARY_DIR}/wire_fuzz_corpus)
  set_tests_properties(wire_fuzz PROPERTIES LABELS "fuzz;unsanitized" TIMEOUT 120)
else()
  message(STATUS "clang++ not found: the wire fuzzer is not built")
endif()

# The benchmarks' smoke tests, in the normal build only (bench/CMakeLists.txt).
# Label 'unsanitized': what the normal build runs and the sanitizer builds have
# not (scripts/test.sh runs only these there when the sanitizers run too).
if(NOT AXON_SANITIZE)
# axon-bench --quick end to end (two daemons, ucx_perftest, gpu-bench's rows or
# its "no CUDA device").
add_test(NAME axon_bench_quick
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/deploy/bench_smoke.sh $<TARGET_FILE:axon-bench>
                 ${CMAKE_CURRENT_BINARY_DIR}/bench_smoke)
set_tests_properties(axon_bench_quick PROPERTIES LABELS "integration;unsanitized" TIMEOUT 400
                     RUN_SERIAL TRUE)

# call-bench --quick end to end: two daemons, every host row measured (GPU
# rows say "no CUDA device" without a GPU; TensorPipe is left out).
add_test(NAME call_bench_quick
         COMMAND $<TARGET_FILE:call-bench> --quick --runs 1 --tensorpipe off
                 --run-dir ${CMAKE_CURRENT_BINARY_DIR}/call_bench_smoke
                 --json ${CMAKE_CURRENT_BINARY_DIR}/call_bench_smoke.json)
set_tests_properties(call_bench_quick PROPERTIES LABELS "integration;unsanitized" TIMEOUT 300
                     RUN_SERIAL TRUE)
endif()

# axon-soak for 30 s: clients killed as the load runs; the daemons stay up,
# no client sees an error, and both give back every descriptor.
add_test(NAME soak_30s
         COMMAND $<TARGET_FILE:axon-soak> --seconds 30 --clients 4 --kill-every-ms 3000
                 --run-dir ${CMAKE_CURRENT_BINARY_DIR}/soak
                 --json ${CMAKE_CURRENT_BINARY_DIR}/soak.json)
set_tests_properties(soak_30s PROPERTIES LABELS "integration" TIMEOUT 180)

# The source checks look at the sources, not at a build: the normal build runs
# them, the sanitizer builds do not repeat them.
if(NOT AXON_SANITIZE)
# Sources follow .clang-format (Google style, 100 columns).
add_test(NAME clang_format COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_format.sh
                                   ${PROJECT_SOURCE_DIR})
set_tests_properties(clang_format PROPERTIES LABELS "unit;unsanitized" SKIP_RETURN_CODE 77)

# The daemon's lock annotations (ABSL_GUARDED_BY), checked by clang's
# -Wthread-safety: GCC, which builds axond, ignores them.
add_test(NAME thread_safety COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_thread_safety.py
                                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(thread_safety PROPERTIES LABELS "unit;unsanitized" SKIP_RETURN_CODE 77
                     TIMEOUT 300)

# Every UCX name in daemon/ucx, every gRPC server detail in daemon/rpc.
add_test(NAME layers COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_layers.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(layers PROPERTIES LABELS "unit;unsanitized")
endif()
