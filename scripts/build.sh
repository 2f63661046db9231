#!/usr/bin/env bash
# Installs the dependencies (scripts/setup-deps.sh), then configures and builds
# axon. Usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]
# Default BUILD_DIR: build. Example: scripts/build.sh build-asan -DAXON_SANITIZE=address
# AXON_BUILD_TARGETS (space-separated) builds only those targets.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$repo/build}
shift || true
deps=$("$repo/scripts/setup-deps.sh")
while IFS= read -r line; do
  if [[ $line == AXON_*=* ]]; then export "${line?}"; fi
done <<<"$deps"
# The GoogleTest suites are built unless AXON_TEST_SUITES=OFF (scripts/test.sh
# sets it for build/ when the sanitizer builds run them); given every time, so
# a build directory never keeps test.sh's choice.
cmake -S "$repo" -B "$build_dir" -G Ninja -DAXON_UCX_ROOT="$AXON_UCX_ROOT" \
  -DAXON_ETCD_API="$AXON_ETCD_API" -DAXON_TEST_SUITES="${AXON_TEST_SUITES:-ON}" "$@" >/dev/null
targets=()
for t in ${AXON_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
