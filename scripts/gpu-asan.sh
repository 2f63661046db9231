#!/usr/bin/env bash
# The GPU tests under AddressSanitizer + UBSan, on the GPU machine (CI has no
# GPU, so its ASan run skips them).
#   here:             scripts/gpu-asan.sh pack   # build-asan -> .bundle/asan.tgz
#   on the GPU host:  scripts/gpu-asan.sh run [GTEST_FILTER]
# The ASan binaries are too large to carry as they are (about 150 MiB); packed
# they are about 30 MiB. `run` unpacks them over .bundle/, links the paths the
# tests were built with (build-asan/...), runs gpu_message_test and
# multi_gpu_test with every process's sanitizer log in /tmp/axon-asan, and
# fails if any log reports an error. UCX's own leak with a GPU present is
# suppressed (tests/lsan.supp); its stack needs the slow unwinder.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
helpers=(daemon/axond client/axonctl tests/attach_client tests/msg_peer tests/gpu_client)
case ${1:-} in
  pack)
    cmake --build "$repo/build-asan" -j2
    "$repo/scripts/gpu-bundle.sh" "$repo/build-asan" >/dev/null
    keep=" ${helpers[*]##*/} gpu_message_test multi_gpu_test ucx_perftest "
    for f in "$repo/.bundle/bin/"*; do
      [[ $keep == *" $(basename "$f") "* ]] || rm -f "$f"
    done
    tar czf /tmp/axon-asan.tgz -C "$repo" .bundle
    rm -rf "$repo/.bundle" && mkdir "$repo/.bundle" && mv /tmp/axon-asan.tgz "$repo/.bundle/asan.tgz"
    du -sh "$repo/.bundle/asan.tgz"
    ;;
  run)
    filter=${2:-*}
    tar xzf "$repo/.bundle/asan.tgz" -C "$repo"
    for p in "${helpers[@]}"; do
      mkdir -p "$repo/build-asan/$(dirname "$p")"
      ln -sf "$repo/.bundle/bin/$(basename "$p")" "$repo/build-asan/$p"
    done
    logs=/tmp/axon-asan
    rm -rf "$logs" && mkdir -p "$logs"
    export LD_LIBRARY_PATH=$repo/.bundle/lib NCCL_NVLS_ENABLE=0
    export LSAN_OPTIONS=suppressions=$repo/tests/lsan.supp
    export ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=16:log_path=$logs/asan
    export UBSAN_OPTIONS=print_stacktrace=1:log_path=$logs/ubsan
    export UCX_TLS=^cma  # UCX's CMA probe and ASan: see scripts/test.sh
    status=0
    for t in gpu_message_test multi_gpu_test; do
      "$repo/.bundle/bin/$t" --gtest_filter="$filter" --gtest_brief=1 || status=1
    done
    if grep -l "ERROR: \|runtime error" "$logs"/* 2>/dev/null; then
      echo "gpu-asan: sanitizer reports above (in $logs)" >&2
      grep -h -A30 "ERROR: \|runtime error" "$logs"/* | head -120
      status=1
    fi
    exit $status
    ;;
  *) echo "usage: $0 pack | run [GTEST_FILTER]" >&2; exit 2 ;;
esac
