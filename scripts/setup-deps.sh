#!/usr/bin/env bash
# Installs everything axon builds and tests with, on a fresh Debian 12 /
# Ubuntu 24.04 machine:
#   - Debian packages, with apt-get (as root, or through sudo);
#   - UCX: PyPI's libucx-cu13 wheel (UCX 1.22, built with CUDA), unpacked into
#     a local prefix; prints nothing else and changes nothing outside the repo.
# Prints the UCX prefix as its last line: AXON_UCX_ROOT=...
# Set AXON_UCX_ROOT yourself to use another UCX and skip the wheel.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deps_dir=${AXON_DEPS_DIR:-$repo/build/_deps}
ucx_wheel_version=1.22.0

packages=(
  cmake ninja-build g++ pkg-config python3-pip python3-venv python3-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libyaml-cpp-dev libasio-dev libspdlog-dev libfmt-dev libcli11-dev
  libsystemd-dev libssl-dev libgtest-dev libgmock-dev
  libcpp-httplib-dev  # the metrics endpoint
  prometheus  # the metrics test scrapes axond with a real Prometheus
  clang libclang-rt-14-dev  # the libFuzzer target
  clang-format
  systemd  # systemd-analyze, for checking the unit file
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-deps: installing ${missing[*]}" >&2
  if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "setup-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [[ -z ${AXON_UCX_ROOT:-} ]]; then
  prefix=$deps_dir/ucx-wheel
  if [[ ! -f $prefix/libucx/lib/libucp.so ]]; then
    echo "setup-deps: installing UCX ${ucx_wheel_version} (PyPI libucx-cu13) into $prefix" >&2
    python3 -m pip install -q --disable-pip-version-check --no-deps --target "$prefix" \
      "libucx-cu13==${ucx_wheel_version}" >&2
  fi
  AXON_UCX_ROOT=$prefix/libucx
fi
echo "AXON_UCX_ROOT=$AXON_UCX_ROOT"
