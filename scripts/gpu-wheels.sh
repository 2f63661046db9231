#!/usr/bin/env bash
# Wheels for the GPU machine's Python (3.12, with PyTorch and numpy, no
# package registry), into .gl/ (git-ignored; carry .gl with the run, 64 MiB
# in all): in .gl/wheels the axon package built here for CPython 3.12 and
# pytest with what it needs; .gl/nixl.whl.xz, NIXL (nixl-cu13, without its
# dependencies, which the GPU machine has) for the benchmarks' NIXL columns,
# less what the agent never loads (the expert-parallel kernels, C++ headers,
# UCX's CUDA perftest module), so that it fits the carry limit with the rest.
# There, `scripts/gpu-run.sh python ...` installs them into /tmp/pyaxon.
# Usage: scripts/gpu-wheels.sh [PYTHON3.12]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3.12}
out=$repo/.gl/wheels
rm -rf "$out"
mkdir -p "$out"
run() { echo "==> $*" >&2; "$@"; }
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' ||
  { echo "gpu-wheels: $python is not CPython 3.12" >&2; exit 2; }
pip=("$python" -m pip --disable-pip-version-check -q)
run "${pip[@]}" install "scikit-build-core>=0.10" "nanobind>=2.4"
run "${pip[@]}" wheel --no-build-isolation --no-deps -w "$out" "$repo/python"
run "${pip[@]}" download -d "$out" --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 pytest
if [[ ! -s $repo/.gl/nixl.whl.xz ]]; then
  tmp=$(mktemp -d)
  run "${pip[@]}" download -d "$tmp" --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 nixl-cu13
  wheel=$(ls "$tmp"/nixl_cu13-*.whl)
  run zip -q -d "$wheel" 'nixl_ep_cu13/*' 'nixl_cu13-*.data/headers/*' \
    'nixl_cu13.libs/ucx/libucx_perftest_cuda*'
  xz -T0 -9 -c "$wheel" > "$repo/.gl/nixl.whl.xz"
  basename "$wheel" > "$repo/.gl/nixl.whl.name"  # pip wants the wheel's own name
  rm -rf "$tmp"
fi
ls -la "$out" >&2
