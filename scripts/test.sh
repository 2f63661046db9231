#!/usr/bin/env bash
# Builds axon and runs the whole test suite:
#   build/       the normal build: every C++ test;
#   python       the axon package, built by pip into build/venv, and its
#                pytest suite against build/'s axond (scripts/python-test.sh);
#   build-asan/  AddressSanitizer + UBSan: every C++ test;
#   build-tsan/  ThreadSanitizer: the tests labelled 'tsan' (see tests/CMakeLists.txt).
# AXON_TEST_SANITIZERS=0 runs only the first. GPU tests skip without a GPU.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
run() { echo "==> $*" >&2; "$@"; }

run "$repo/scripts/build.sh" "$repo/build"
run ctest --test-dir "$repo/build" --output-on-failure -j "$jobs"
run "$repo/scripts/python-test.sh"

if [[ ${AXON_TEST_SANITIZERS:-1} != 0 ]]; then
  run "$repo/scripts/build.sh" "$repo/build-asan" -DAXON_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS="suppressions=$repo/tests/lsan.supp" \
    run ctest --test-dir "$repo/build-asan" --output-on-failure -j "$jobs"
  # Only the binaries of the 'tsan' tests (ctest fails on one not built).
  AXON_BUILD_TARGETS="ucx_loop_test ring_test" \
    run "$repo/scripts/build.sh" "$repo/build-tsan" -DAXON_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
  # UCX's memory hooks (ucm) intercept mmap/madvise and deadlock TSan's own
  # interceptors at thread start; the TSan run goes without them.
  UCX_MEM_EVENTS=no TSAN_OPTIONS="halt_on_error=1 suppressions=$repo/tests/tsan.supp" \
    run ctest --test-dir "$repo/build-tsan" --output-on-failure -j "$jobs" -L tsan
fi
echo "axon: all test runs passed" >&2
