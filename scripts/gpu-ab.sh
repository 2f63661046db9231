#!/usr/bin/env bash
# Runs on the GPU machine: a benchmark against this tree's axond (.bundle/bin)
# and an older one's (.bundle/base, from scripts/gpu-bundle.sh --base),
# alternated ROUNDS times in one call, so both see the same machine. Prints
# each run's table; with $OUT set, writes $OUT/ab-new.json and
# $OUT/ab-base.json (one benchmark JSON per line).
#   scripts/gpu-ab.sh ROUNDS [axon-bench args...]   each tree's axon-bench and axond
#   scripts/gpu-ab.sh --call ROUNDS [call-bench args...]
#                                  this tree's call-bench against each axond
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bundle=$repo/.bundle
call=0
if [[ ${1:-} == --call ]]; then
  call=1
  shift
fi
rounds=${1:?usage: gpu-ab.sh [--call] ROUNDS [benchmark args]}
shift
[[ -x $bundle/base/axond ]] || { echo "gpu-ab: no .bundle/base (gpu-bundle.sh --base)" >&2; exit 2; }
export LD_LIBRARY_PATH=$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export NCCL_NVLS_ENABLE=0
out=${OUT:-/tmp/axon-ab}
mkdir -p "$out"
for ((i = 1; i <= rounds; ++i)); do
  for which in new base; do
    dir=$bundle/bin
    [[ $which == base ]] && dir=$bundle/base
    echo "== round $i: $which"
    if ((call)); then
      timeout 240 "$bundle/bin/call-bench" --axond "$dir/axond" --run-dir "/tmp/axon-ab-$which" \
        --json /tmp/axon-ab.json "$@" 2>&1 | grep -v '^call-bench: daemons up' || true
    else
      timeout 240 "$dir/axon-bench" --axond "$dir/axond" --perftest "$bundle/bin/ucx_perftest" \
        --ucx-libdir "$bundle/lib" --run-dir "/tmp/axon-ab-$which" --json /tmp/axon-ab.json "$@" \
        2>&1 | grep -v '^ *{\|^ *"\|^ *}\|^ *\]\|elapsed' || true
    fi
    [[ -s /tmp/axon-ab.json ]] && tr -d '\n' < /tmp/axon-ab.json >> "$out/ab-$which.json" && echo >> "$out/ab-$which.json"
    rm -f /tmp/axon-ab.json
  done
done
