#!/bin/bash
# Instructions per message on each daemon's UCX thread, counted by callgrind:
# a deterministic measure of per-message work, for A/B comparisons on a noisy
# machine (timings swing by 10-15% between runs; these counts by about 1%).
#
#   scripts/callgrind-cost.sh [--work] [--calls] [AXOND ...]   (default: build/daemon/axond)
#
# For each axond it runs `axon-bench --quick --placements remote --sizes 64`
# with both daemons under callgrind, once with --runs 1 and once with
# --runs 3, and prints the UCX thread's instructions (Ir) of each daemon. The
# difference between the two, divided by the messages of two more runs
# (2 x (20000 streamed + 600 ping-pong)), is the steady-state cost per
# message: one-time work (UCX's protocol selection, connection setup) cancels
# out. Idle spinning counts too, so repeat a row to see its spread.
#
# --calls does the same for calls: `call-bench --placements remote
# --host-sizes 64` (echo calls, 200 in flight), once with 20,000 sustained
# calls and once with 60,000; the difference over 40,000 is each daemon's
# cost per call (a: the caller's, b: the server's).
#
# --work counts only the engine's work: instructions inside
# RingEngine::Handle (a submission), Worker::RunDeferred (an arrival),
# RingEngine::Flush and RemotePath::FlushAcksFromLoop (callgrind's
# --toggle-collect). Idle polls, and the polls that find the ring or UCX
# FIFO entry, do not count, so it sizes changes to the daemon's
# per-message code better than the whole-thread count. It still varies
# (sender about 3%, receiver up to 15%): how many messages one poll or
# one ack batch serves depends on timing.
# Needs valgrind (apt-get install valgrind); about 20 s per axond.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$repo/build/bench/axon-bench
toggles=""
calls=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --work)
      for f in 'axon::daemon::RingEngine::Handle(*' 'axon::ucx::Worker::RunDeferred()*' \
        'axon::daemon::RingEngine::Flush(*' 'axon::daemon::RemotePath::FlushAcksFromLoop(*'; do
        toggles+=" --toggle-collect='$f'"
      done
      ;;
    --calls) calls=1 ;;
    *)
      echo "unknown option $1" >&2
      exit 2
      ;;
  esac
  shift
done
[[ $# -gt 0 ]] || set -- "$repo/build/daemon/axond"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/axond.sh" <<WRAP
#!/bin/bash
exec valgrind --tool=callgrind --separate-threads=yes --dump-instr=no $toggles \\
  --callgrind-out-file="\$CG_DIR/cg.%p.out" "\$AXOND_REAL" "\$@" 2>>"\$CG_DIR/valgrind.log"
WRAP
chmod +x "$work/axond.sh"

# Ir of the UCX loop thread of each daemon whose output is in $1, as "a b".
loop_ir() {
  local out=()
  for pid in $(ls "$1" | sed -n 's/^cg\.\([0-9]*\)\.out-.*/\1/p' | sort -un); do
    for f in "$1"/cg."$pid".out-*; do
      # The UCX thread: the one that ran the loop (with --work, the only one
      # with instructions counted).
      if [[ -n $toggles ]]; then
        grep -q '^summary: [1-9]' "$f" || continue
      elif ! grep -q "Loop::RunFromLoop" "$f"; then
        continue
      fi
      out+=("$(sed -n 's/^summary: //p' "$f")")
    done
  done
  echo "${out[@]}"
}

# One measured run with `size` (runs, or sustained calls): its daemons' Ir.
run_bench() {  # SIZE
  if [[ $calls == 1 ]]; then
    "$repo/build/bench/call-bench" --axond "$work/axond.sh" --placements remote --host-sizes 64 \
      --gpu-sizes --tensorpipe off --runs 1 --calls 2000 --sustained-calls "$1" \
      --run-dir "$work/run"
  else
    "$bench" --quick --axond "$work/axond.sh" --placements remote --sizes 64 --runs "$1" \
      --run-dir "$work/run"
  fi
}
if [[ $calls == 1 ]]; then
  sizes=(20000 60000) per=40000 unit=call
else
  sizes=(1 3) per=$((2 * (20000 + 600))) unit=msg
fi
printf '%-50s %14s %14s %14s %14s %10s %10s\n' axond "a ${sizes[0]}" "b ${sizes[0]}" "a ${sizes[1]}" \
  "b ${sizes[1]}" "a Ir/$unit" "b Ir/$unit"
for axond in "$@"; do
  declare -A ir=()
  for size in "${sizes[@]}"; do
    export CG_DIR=$work/cg-$size AXOND_REAL=$axond
    rm -rf "$CG_DIR" && mkdir -p "$CG_DIR"
    run_bench "$size" >"$work/bench.log" 2>&1 || { cat "$work/bench.log"; exit 1; }
    read -r a b <<<"$(loop_ir "$CG_DIR")"
    ir[a$size]=$a ir[b$size]=$b
  done
  s0=${sizes[0]} s1=${sizes[1]}
  printf '%-50s %14s %14s %14s %14s %10.0f %10.0f\n' "$axond" "${ir[a$s0]}" "${ir[b$s0]}" \
    "${ir[a$s1]}" "${ir[b$s1]}" "$(echo "(${ir[a$s1]} - ${ir[a$s0]}) / $per" | bc -l)" \
    "$(echo "(${ir[b$s1]} - ${ir[b$s0]}) / $per" | bc -l)"
done
