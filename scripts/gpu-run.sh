#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, with the .bundle/ that
# scripts/gpu-bundle.sh made here (that machine has no gRPC, protobuf or UCX).
#   scripts/gpu-run.sh tests [GTEST_FILTER]   every *_test program; a summary at the end
#   scripts/gpu-run.sh bench [ARGS...]        axon-bench against the bundled ucx_perftest
#   scripts/gpu-run.sh gpu-bench [ARGS...]    gpu-bench: GPU tensors against cudaMemcpy
#   scripts/gpu-run.sh demo                   axon demo
# The test programs look for axond, axonctl and their helpers where CMake
# built them (build/...); this links those paths to the bundle.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bundle=$repo/.bundle
export LD_LIBRARY_PATH=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0
for pair in daemon/axond client/axonctl client/axon client/send_tensor tests/attach_client \
            tests/msg_peer tests/gpu_client; do
  mkdir -p "$repo/build/$(dirname "$pair")"
  [[ -e $repo/build/$pair ]] || ln -s "$bundle/bin/$(basename "$pair")" "$repo/build/$pair"
done
mode=${1:-tests}
shift || true
case $mode in
  tests)
    filter=${1:-*}
    failed=()
    for t in "$bundle"/bin/*_test; do
      name=$(basename "$t")
      if "$t" --gtest_filter="$filter" --gtest_brief=1 > "/tmp/$name.log" 2>&1; then
        echo "PASS $name ($(grep -Eo '[0-9]+ tests?' "/tmp/$name.log" | tail -1))"
      else
        echo "FAIL $name"; tail -40 "/tmp/$name.log"; failed+=("$name")
      fi
      grep -h "SKIPPED\|GPU\|cuda" "/tmp/$name.log" | head -5
    done
    echo "${#failed[@]} program(s) failed: ${failed[*]:-none}"
    [[ ${#failed[@]} -eq 0 ]]
    ;;
  bench)
    exec "$bundle/bin/axon-bench" --axond "$bundle/bin/axond" --perftest "$bundle/bin/ucx_perftest" \
      --ucx-libdir "$bundle/lib" --run-dir /tmp/axon-bench "$@"
    ;;
  gpu-bench)
    exec "$bundle/bin/gpu-bench" --axond "$bundle/bin/axond" --perftest "$bundle/bin/ucx_perftest" \
      --ucx-libdir "$bundle/lib" --run-dir /tmp/axon-gpu-bench "$@"
    ;;
  demo)
    exec "$bundle/bin/axon" demo --axond "$bundle/bin/axond" --run-dir /tmp/axon-demo
    ;;
  *) echo "usage: $0 tests [FILTER] | bench [ARGS] | gpu-bench [ARGS] | demo" >&2; exit 2 ;;
esac
