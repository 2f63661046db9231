#!/usr/bin/env bash
# Installs the dependencies (scripts/setup-deps.sh), then configures and builds
# axon. Usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]
# Default BUILD_DIR: build. Example: scripts/build.sh build-asan -DAXON_SANITIZE=address
# AXON_BUILD_TARGETS (space-separated) builds only those targets.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$repo/build}
shift || true
ucx_line=$("$repo/scripts/setup-deps.sh" | tail -n 1)
export "${ucx_line?}"
cmake -S "$repo" -B "$build_dir" -G Ninja -DAXON_UCX_ROOT="$AXON_UCX_ROOT" "$@" >/dev/null
targets=()
for t in ${AXON_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
