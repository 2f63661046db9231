#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, with the .bundle/ that
# scripts/gpu-bundle.sh made here (that machine has no gRPC, protobuf or UCX).
#   scripts/gpu-run.sh tests [GTEST_FILTER]   every *_test program; a summary at the end
#   scripts/gpu-run.sh bench [ARGS...]        axon-bench against the bundled ucx_perftest
#   scripts/gpu-run.sh gpu-bench [ARGS...]    gpu-bench: GPU tensors against cudaMemcpy
#   scripts/gpu-run.sh call-bench [ARGS...]   call-bench: calls against messages and TensorPipe
#   scripts/gpu-run.sh copy-floor             gpu-copy-floor: one small GPU copy, every way
#   scripts/gpu-run.sh window-bench [ARGS...] window-bench: one-sided against copies and ucx_perftest
#                                             (--nixl "env -u LD_LIBRARY_PATH python3.12": and NIXL)
#   scripts/gpu-run.sh python [PYTEST ARGS]   the Python suite (GPU tests included) with the
#                                             wheels of scripts/gpu-wheels.sh (.gl/wheels)
#   scripts/gpu-run.sh python-bench OUT_DIR   bench/python/transfer_bench.py against NIXL, then
#                                             call_bench.py, their JSON into OUT_DIR
#   scripts/gpu-run.sh demo                   axon demo
# AXON_MPS=1 runs it with the CUDA Multi-Process Service up (started here,
# stopped at the end): without MPS, processes sharing a GPU take turns by
# time slice (docs/PERFORMANCE.md, "GPU tensors").
# The test programs look for axond, axonctl and their helpers where CMake
# built them (build/...); this links those paths to the bundle.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bundle=$repo/.bundle
export LD_LIBRARY_PATH=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0
for pair in daemon/axond client/axonctl client/axon client/send_tensor tests/attach_client \
            tests/msg_peer tests/gpu_client tests/call_peer tests/window_peer; do
  mkdir -p "$repo/build/$(dirname "$pair")"
  [[ -e $repo/build/$pair ]] || ln -s "$bundle/bin/$(basename "$pair")" "$repo/build/$pair"
done
if [[ ${AXON_MPS:-0} == 1 ]]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/axon-mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/axon-mps/log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d || { echo "gpu-run: cannot start MPS" >&2; exit 1; }
  trap 'echo quit | nvidia-cuda-mps-control' EXIT
  echo "gpu-run: MPS up" >&2
fi
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
    "$bundle/bin/axon-bench" --axond "$bundle/bin/axond" --perftest "$bundle/bin/ucx_perftest" \
      --ucx-libdir "$bundle/lib" --run-dir /tmp/axon-bench "$@"
    ;;
  gpu-bench)
    "$bundle/bin/gpu-bench" --axond "$bundle/bin/axond" --perftest "$bundle/bin/ucx_perftest" \
      --ucx-libdir "$bundle/lib" --run-dir /tmp/axon-gpu-bench "$@"
    ;;
  window-bench)
    "$bundle/bin/window-bench" --axond "$bundle/bin/axond" --perftest "$bundle/bin/ucx_perftest" \
      --ucx-libdir "$bundle/lib" --run-dir /tmp/axon-window-bench \
      --nixl-script "$repo/bench/window_bench/nixl_peer.py" "$@"
    ;;
  copy-floor)
    "$bundle/bin/gpu-copy-floor"
    ;;
  call-bench)
    "$bundle/bin/call-bench" --axond "$bundle/bin/axond" --run-dir /tmp/axon-call-bench "$@"
    ;;
  python|python-bench)
    # The wheels' own libraries come with them; the bundle's lib/ stays for
    # axond, which the tests and benches start.
    site=/tmp/pyaxon
    rm -rf "$site"  # a warm machine may hold an older wheel
    python3.12 -m pip install -q --no-index --find-links "$repo/.gl/wheels" --target "$site" \
      axon pytest || exit 1
    if [[ -s $repo/.gl/nixl.whl.xz ]]; then
      wheel=/tmp/$(cat "$repo/.gl/nixl.whl.name" 2>/dev/null ||
                   echo nixl_cu13-1.5.1-cp312-cp312-manylinux_2_28_x86_64.whl)
      xz -dc "$repo/.gl/nixl.whl.xz" > "$wheel"
      python3.12 -m pip install -q --no-index --no-deps --target "$site" "$wheel" || exit 1
    fi
    py=(env PYTHONPATH="$site" python3.12)
    if [[ $mode == python ]]; then
      AXON_AXOND=$bundle/bin/axond "${py[@]}" -m pytest -q "$repo/python/tests" "$@"
    else
      mkdir -p "$repo/build/bench"
      ln -sf "$bundle/bin/call-bench" "$repo/build/bench/call-bench"
      # call-bench finds TensorPipe's side beside itself (by the path it ran as).
      ln -sf "$bundle/bin/tensorpipe_rpc.py" "$repo/build/bench/tensorpipe_rpc.py"
      out=${1:?python-bench OUT_DIR}
      mkdir -p "$out"
      "${py[@]}" "$repo/bench/python/transfer_bench.py" --json "$out/python-transfer.json" \
        --nixl "env -u LD_LIBRARY_PATH PYTHONPATH=$site python3.12" > "$out/python-transfer.log" 2>&1
      transfer=$?
      "${py[@]}" "$repo/bench/python/call_bench.py" --json "$out/python-calls.json" \
        > "$out/python-calls.log" 2>&1
      calls=$?
      echo "gpu-run: transfer_bench.py exit $transfer, call_bench.py exit $calls"
      ((transfer == 0 && calls == 0))
    fi
    ;;
  demo)
    "$bundle/bin/axon" demo --axond "$bundle/bin/axond" --run-dir /tmp/axon-demo
    ;;
  *) echo "usage: $0 tests [FILTER] | bench [ARGS] | gpu-bench [ARGS] | call-bench [ARGS] |" \
          "window-bench [ARGS] | python [ARGS] | python-bench OUT_DIR | demo" >&2
     exit 2 ;;
esac
