#!/usr/bin/env bash
# Runs on the GPU machine: what moves ucx_perftest ucp_am_bw at P3's sizes
# (posix,sysv, window 2 as axon-bench uses above 4 MiB): transparent huge
# pages for its buffers (prctl PR_SET_THP_DISABLE through a wrapper) and
# axond's UCX_MM_FIFO_ELEM_SIZE. Prints one line per run: variant, size, GB/s.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
b=$repo/.bundle
export LD_LIBRARY_PATH=$b/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "THP enabled: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
echo "THP shmem:   $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null)"
nothp=(python3 -c 'import ctypes,os,sys; ctypes.CDLL(None).prctl(41,1,0,0,0); os.execv(sys.argv[1], sys.argv[1:])')
port=25000
run() {  # variant size iters
  local variant=$1 size=$2 n=$3 pre=() envs=(UCX_TLS=posix,sysv UCX_WARN_UNUSED_ENV_VARS=n)
  [[ $variant == nothp ]] && pre=("${nothp[@]}")
  [[ $variant == fifo512 ]] && envs+=(UCX_MM_FIFO_ELEM_SIZE=512)
  port=$((port + 1))
  env "${envs[@]}" "${pre[@]}" "$b/bin/ucx_perftest" -p $port -m host >/dev/null 2>&1 &
  sleep 0.3
  local line
  line=$(env "${envs[@]}" "${pre[@]}" "$b/bin/ucx_perftest" 127.0.0.1 -p $port -t ucp_am_bw -s "$size" \
    -n "$n" -w $((n / 10)) -W 2 -m host -f 2>&1 | awk 'NF==8 && $1+0>0 {l=$0} END {print l}')
  wait
  echo "$variant $size $(echo "$line" | awk '{printf "%.2f", $6*1048576/1e9}')"
}
for round in 1 2 3; do
  for size in 8388608 33554432; do
    n=$((size > 8388608 ? 100 : 400))
    for variant in thp nothp fifo512; do run $variant $size $n; done
  done
done
