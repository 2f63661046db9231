#!/usr/bin/env bash
# Installs everything axon builds and tests with, on a fresh Debian 12 /
# Ubuntu 24.04 machine:
#   - Debian packages, with apt-get (as root, or through sudo);
#   - UCX: PyPI's libucx-cu13 wheel (UCX 1.22, built with CUDA), unpacked into
#     a local prefix; prints nothing else and changes nothing outside the repo.
#   - etcd's API (.proto files), from Debian's golang-etcd-server-dev, unpacked
#     into a local folder;
# Prints AXON_ETCD_API=... and, as its last line, the UCX prefix:
# AXON_UCX_ROOT=...
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
  etcd-server  # membership through etcd; its tests start a real one
  openssl  # the etcd TLS test makes its certificates
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

# etcd's v3 API: the .proto files of Debian's etcd source package, the same
# release as etcd-server. Only the package is unpacked (apt-get download), not
# installed: installing it would pull in a hundred Go source packages.
etcd_api=$deps_dir/etcd-api
if [[ ! -f $etcd_api/etcdserver/etcdserverpb/rpc.proto ]]; then
  echo "setup-deps: unpacking etcd's API (golang-etcd-server-dev) into $etcd_api" >&2
  scratch=$(mktemp -d)
  chmod 755 "$scratch"  # apt-get download runs as _apt where it can
  (cd "$scratch" && apt-get download -qq golang-etcd-server-dev 2>/dev/null >&2)
  dpkg-deb -x "$scratch"/golang-etcd-server-dev_*.deb "$scratch/x"
  mkdir -p "$etcd_api"
  (cd "$scratch/x/usr/share/gocode/src/go.etcd.io/etcd" &&
    cp --parents etcdserver/etcdserverpb/rpc.proto mvcc/mvccpb/kv.proto auth/authpb/auth.proto \
      "$etcd_api")
  rm -rf "$scratch"
fi
echo "AXON_ETCD_API=$etcd_api"

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
