#!/usr/bin/env bash
# Packs a built tree for the GPU machine (which has no gRPC, protobuf or UCX):
# the binaries, the test programs, and every shared library they need that is
# not part of the base system, into .bundle/ (git-ignored). On the GPU machine:
#   export LD_LIBRARY_PATH=$PWD/.bundle/lib:$PWD/.bundle/lib/ucx-wheel
#   .bundle/bin/axond ...
# Usage: scripts/gpu-bundle.sh [--profile] [--base BASE_BUILD_DIR] [BUILD_DIR]
#   --profile: only axond, axon-bench, call-bench and gpu-bench, with their symbols, plus this
#   machine's perf and its libraries packed in .bundle/perf.tar.xz (there:
#   tar -C .bundle -xJf .bundle/perf.tar.xz, then
#   LD_LIBRARY_PATH=.bundle/perf/lib .bundle/perf/perf record ...).
#   --base: also the axond and axon-bench of an older build (see
#   scripts/build-base.sh) in .bundle/base/, for scripts/gpu-ab.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
profile=0
base=
while [[ ${1:-} == --* ]]; do
  case $1 in
    --profile) profile=1; shift ;;
    --base) base=$2; shift 2 ;;
    *) echo "gpu-bundle: unknown option $1" >&2; exit 2 ;;
  esac
done
build=${1:-$repo/build}
out=$repo/.bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
bins=("$build/daemon/axond" "$build/client/axonctl" "$build/client/axon" "$build/client/send_tensor")
if ((profile)); then
  bins=("$build/daemon/axond" "$build/bench/axon-bench" "$build/bench/call-bench" "$build/bench/gpu-bench"
        "$build/bench/gpu-copy-floor")
else
for b in "$build"/bench/*_bench "$build/bench/axon-bench" "$build/bench/gpu-bench" "$build/bench/gpu-copy-floor" \
         "$build/bench/call-bench" "$build/bench/axon-soak" "$build/bench/window-bench"; do [[ -x $b ]] && bins+=("$b"); done
for t in "$build"/tests/*_test "$build/tests/attach_client" "$build/tests/msg_peer" \
         "$build/tests/gpu_client" "$build/tests/call_peer" "$build/tests/window_peer"; do
  [[ -x $t ]] && bins+=("$t")
done
fi
cp "${bins[@]}" "$out/bin/"
# call-bench's TensorPipe peer runs beside it.
cp "$repo/bench/call_bench/tensorpipe_rpc.py" "$out/bin/"
# The libraries glibc and the GPU machine's base image already have.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libgcc_s|libstdc\+\+|libcuda\.so|libcudart\.so|libnvidia)'
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    cp -nL "$path" "$out/lib/$name"
  done
done
ucx_root=$(grep -E '^AXON_UCX_ROOT:' "$build/CMakeCache.txt" | cut -d= -f2)
if [[ -n $ucx_root ]]; then
  mkdir -p "$out/lib/ucx"
  cp -L "$ucx_root"/lib/lib{ucp,uct,ucs,ucm}.so.0 "$out/lib/"
  cp -L "$ucx_root"/lib/ucx/*.so.0 "$out/lib/ucx/"
  # The wheel's vendored libraries (its cudart, which ucx_perftest's CUDA
  # memory module needs for `-m cuda`).
  for l in "$ucx_root"/../libucx_*.libs/*.so*; do [[ -e $l ]] && cp -nL "$l" "$out/lib/"; done
  if [[ -x $ucx_root/bin/ucx_perftest ]]; then
    cp "$ucx_root"/bin/{ucx_perftest,ucx_info} "$out/bin/"
    # The baseline's own libraries (the wheel's libgomp, ...).
    ldd "$ucx_root/bin/ucx_perftest" | awk '/=> \// {print $1, $3}' | while read -r name path; do
      [[ $name =~ $skip ]] && continue
      cp -nL "$path" "$out/lib/$name"
    done
  fi
fi
# Debug info stays here; the bundle must travel in under 64 MiB.
if ((profile)); then
  strip --strip-debug "$out"/bin/* "$out"/lib/*.so* "$out"/lib/ucx/*.so* 2>/dev/null || true
  perf=$(command -v perf)
  mkdir -p "$out/perf/lib"
  cp -L "$perf" "$out/perf/perf"
  ldd "$perf" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    cp -nL "$path" "$out/perf/lib/$name"
  done
  strip --strip-unneeded "$out"/perf/lib/*.so* 2>/dev/null || true
  # Packed: unpacked it would not fit next to the rest.
  tar -C "$out" -cJf "$out/perf.tar.xz" perf
  rm -rf "$out/perf"
else
  strip --strip-unneeded "$out"/bin/* "$out"/lib/*.so* "$out"/lib/ucx/*.so* 2>/dev/null || true
fi
if [[ -n $base ]]; then
  mkdir -p "$out/base"
  cp "$base/daemon/axond" "$base/bench/axon-bench" "$out/base/"
  strip --strip-unneeded "$out"/base/* 2>/dev/null || true
fi
du -sh "$out"
