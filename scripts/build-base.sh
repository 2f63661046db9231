#!/usr/bin/env bash
# Builds axond, axon-bench and call-bench of an older commit, for a same-call A/B on the
# GPU machine (machines of one kind differ more than most changes do):
#   scripts/build-base.sh COMMIT [DIR]      (DIR: /tmp/axon-base)
#   scripts/gpu-bundle.sh --base DIR/build
# then there: scripts/gpu-ab.sh ROUNDS [axon-bench args].
# Uses the UCX and etcd API of this checkout's build/ (scripts/build.sh made it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:?usage: build-base.sh COMMIT [DIR]}
dir=${2:-/tmp/axon-base}
ucx_root=$(grep -E '^AXON_UCX_ROOT:' "$repo/build/CMakeCache.txt" | cut -d= -f2)
etcd_api=$(grep -E '^AXON_ETCD_API:' "$repo/build/CMakeCache.txt" | cut -d= -f2)
git -C "$repo" worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"
git -C "$repo" worktree prune
git -C "$repo" worktree add -q --detach "$dir" "$commit"
cmake -S "$dir" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAXON_BUILD_TESTS=OFF -DAXON_UCX_ROOT="$ucx_root" -DAXON_ETCD_API="$etcd_api" >/dev/null
ninja -C "$dir/build" -j "$(nproc)" daemon/axond bench/axon-bench bench/call-bench
echo "built $(git -C "$dir" log --oneline -1) in $dir/build"
