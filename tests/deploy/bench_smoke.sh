#!/usr/bin/env bash
# axon-bench --quick end to end, as docs/PERFORMANCE.md documents it: two
# real daemons, ucx_perftest, every host row of both placements measured, and
# the GPU rows (gpu-bench) either measured or reported as having no GPU.
#   bench_smoke.sh AXON_BENCH RUN_DIR
set -uo pipefail
bench=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir"
out=$("$bench" --quick --memory host,cuda --run-dir "$dir" --json "$dir/bench.json" \
  --plot "$dir/bench.svg" 2>&1)
code=$?
fail() { echo "bench_smoke: $*"; echo "$out" | tail -40; exit 1; }
[[ $code == 0 ]] || fail "axon-bench exited $code"
for placement in local remote; do
  rows=$(grep -c "\"placement\": \"$placement\", \"memory\": \"host\", \"size\": [0-9]*, \"pairs\": 1, .*\"messages_per_s\": [1-9]" "$dir/bench.json")
  [[ $rows == 7 ]] || fail "$rows measured $placement host rows in the JSON, not 7"
done
grep -q '"note": ""' "$dir/bench.json" || fail "every row has a note (something failed)"
grep -q '<polyline' "$dir/bench.svg" || fail "the plot has no curve"
if echo "$out" | grep -q "GPU rows: no CUDA device"; then
  echo "bench_smoke: host rows measured; no GPU here"
else
  grep -q '"memory": "cuda"' "$dir/bench.json" || fail "no GPU rows and no reason given"
  echo "bench_smoke: host and GPU rows measured"
fi
