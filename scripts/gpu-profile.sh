#!/usr/bin/env bash
# Profiles a benchmark on the GPU machine with the perf that
# `scripts/gpu-bundle.sh --profile` packed (that machine has no perf).
#   scripts/gpu-profile.sh OUT_DIR NAME [axon-bench ARGS...]
#   AXON_PROFILE=call-bench scripts/gpu-profile.sh OUT_DIR NAME [call-bench ARGS...]
#   AXON_PROFILE_GRAPH=SECONDS ...: instead, call graphs (DWARF) of the
#   daemons alone for SECONDS, from AXON_PROFILE_DELAY (8) seconds into the
#   run, into OUT_DIR/NAME-graph.txt: who calls each loop thread's top
#   symbols (give the bench a long sustained phase).
# writes OUT_DIR/NAME.txt (the benchmark's table) and OUT_DIR/NAME-perf.txt
# (where every thread spent its samples, system-wide, by thread and symbol,
# then each daemon's loop thread alone).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$1 name=$2
shift 2
[[ -x $repo/.bundle/perf/perf ]] || tar -C "$repo/.bundle" -xJf "$repo/.bundle/perf.tar.xz"
perf() { LD_LIBRARY_PATH=$repo/.bundle/perf/lib "$repo/.bundle/perf/perf" "$@"; }
data=/tmp/axon-profile-$name.data
if [[ -n ${AXON_PROFILE_GRAPH:-} ]]; then
  bash "$repo/scripts/gpu-run.sh" "${AXON_PROFILE:-bench}" "$@" > "$out/$name.txt" 2>&1 &
  bench=$!
  sleep "${AXON_PROFILE_DELAY:-8}"
  pids=$(pgrep -d, -f 'bin/axond ')
  perf record -q --call-graph dwarf,8192 -F 1999 -p "$pids" -o "$data" -- \
    sleep "$AXON_PROFILE_GRAPH" 2> "$out/$name-graph.txt"
  wait "$bench"
  # The loop threads' top symbols, then who calls the ones named in
  # AXON_PROFILE_CALLERS (comma-separated), each chain from the symbol up.
  perf report -i "$data" --no-children --comms axond-ucx --sort sym --stdio -g none \
    --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-180 |
    head -60 >> "$out/$name-graph.txt"
  if [[ -n ${AXON_PROFILE_CALLERS:-} ]]; then
    perf report -i "$data" --no-children --comms axond-ucx --symbols "$AXON_PROFILE_CALLERS" \
      --sort sym --stdio -g graph,0.5,callee,function,percent 2>/dev/null | grep -v '^#' |
      grep -v '^$' | cut -c1-180 | head -600 >> "$out/$name-graph.txt"
  fi
  exit 0
fi
perf record -q -a -F 4999 -o "$data" -- bash "$repo/scripts/gpu-run.sh" "${AXON_PROFILE:-bench}" "$@" \
  > "$out/$name.txt" 2>&1
{
  echo "== samples by thread (pid:name)"
  perf report -i "$data" --no-children --sort pid --stdio --percent-limit 0.5 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -30
  for thread in axond-ucx bench-send bench-recv bench-echo axon-progress axon-handler call-bench; do
    echo "== $thread, by symbol (every process with a thread of that name)"
    perf report -i "$data" --no-children --comms "$thread" --percentage relative \
      --sort pid,sym --stdio \
      --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
  done
  # Each daemon's loop on its own (the sender's and the receiver's differ),
  # as shares of that thread's samples, with the library of each symbol.
  for tid in $(perf report -i "$data" --no-children --sort pid --stdio 2>/dev/null |
                 awk '$2 ~ /:axond-ucx$/ {split($2, t, ":"); print t[1]}'); do
    echo "== axond-ucx thread $tid alone, by library and symbol"
    perf report -i "$data" --no-children --tid "$tid" --percentage relative --sort dso,sym \
      --stdio --percent-limit 0.5 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-160 |
      head -60
  done
} > "$out/$name-perf.txt"
