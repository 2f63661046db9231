#!/usr/bin/env bash
# build-ucx.sh — hermetic UCX build from a source tarball.
#
# Usage: scripts/build-ucx.sh SRC_TARBALL PREFIX [CUDA_HOME]
#
#   SRC_TARBALL  UCX source tarball (.tar.gz/.tar.xz/...), e.g. Debian's
#                ucx_1.13.1.orig.tar.xz. A tarball without `configure` is
#                bootstrapped with ./autogen.sh (needs autoconf/automake/libtool).
#   PREFIX       install prefix. Scratch space is created next to it:
#                  PREFIX.src   unpacked sources, build tree and build-ucx.log
#                  PREFIX.nvml  NVML headers (PyPI nvidia-nvml-dev) and a
#                               link-time libnvidia-ml stub, when needed
#   CUDA_HOME    CUDA toolkit root. Default: $CUDA_HOME, else the parent of the
#                directory of `nvcc` on PATH, else /usr/local/cuda. CUDA support
#                is enabled iff that directory exists. Pass "none" to build
#                without CUDA. An explicitly given CUDA_HOME that does not exist
#                is an error.
#
# Only the libraries are built and installed (ucm, ucs, uct incl. the
# transport modules such as cuda, ucp), plus the tools ucx_info and
# ucx_perftest (the benchmarks' baseline; cmake/Ucx.cmake looks for it under
# the prefix), pkg-config and CMake package files. test/apps, examples, gtest,
# Java and Go bindings are NOT built (test/apps/test_cuda_hook.c does not
# compile against CUDA 13: cuCtxCreate changed).
#
# Idempotent: if PREFIX/lib/libucp.so exists and PREFIX/.axon-ucx-build.stamp
# records the same build key (tarball sha256 + CUDA_HOME + recipe version),
# nothing is done.
#
# Environment knobs (all optional):
#   UCX_BUILD_JOBS           parallel make jobs (default: nproc)
#   UCX_BUILD_LOG            where to write the full configure/make log
#                            (default: PREFIX.src/build-ucx.log)
#   UCX_BUILD_VERBOSE=1      also stream configure/make output to the terminal
#   UCX_EXTRA_CONFIGURE_FLAGS  extra flags appended to UCX's configure
#   UCX_NVML_INCLUDE_DIR     directory containing nvml.h (skips the pip step)
#   UCX_NVML_PIP_SPEC        pip requirement for the NVML headers
#                            (default derived from the CUDA version, e.g.
#                            "nvidia-nvml-dev==13.0.*" for CUDA 13.0)
#   PYTHON                   python used for pip (default: python3)
set -Eeuo pipefail

readonly RECIPE_VERSION=2
readonly ME="build-ucx"

log()  { printf '[%s] %s\n' "$ME" "$*"; [[ -n "${LOG_FILE:-}" && -d "$(dirname "$LOG_FILE")" ]] && printf '[%s] %s\n' "$ME" "$*" >>"$LOG_FILE"; return 0; }
warn() { printf '[%s] WARNING: %s\n' "$ME" "$*" >&2; [[ -n "${LOG_FILE:-}" && -d "$(dirname "$LOG_FILE")" ]] && printf '[%s] WARNING: %s\n' "$ME" "$*" >>"$LOG_FILE"; return 0; }
die()  {
    printf '\n[%s] ERROR: %s\n' "$ME" "$*" >&2
    if [[ -n "${LOG_FILE:-}" && -f "$LOG_FILE" ]]; then
        printf '[%s] ERROR: %s\n' "$ME" "$*" >>"$LOG_FILE"
        printf '[%s] full log: %s\n' "$ME" "$LOG_FILE" >&2
    fi
    exit 1
}
trap 'rc=$?; die "unexpected failure (exit ${rc}) at line ${LINENO}: ${BASH_COMMAND}"' ERR

usage() {
    sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# run_step DESCRIPTION CMD... — run CMD with its output appended to LOG_FILE;
# on failure show the tail of the log and abort.
run_step() {
    local desc=$1; shift
    log "==> ${desc}"
    printf '\n===== %s\n===== $ %s\n' "$desc" "$*" >>"$LOG_FILE"
    local rc=0
    if [[ "${UCX_BUILD_VERBOSE:-0}" == 1 ]]; then
        "$@" 2>&1 | tee -a "$LOG_FILE" || rc=$?
    else
        "$@" >>"$LOG_FILE" 2>&1 || rc=$?
    fi
    if (( rc != 0 )); then
        printf '\n[%s] ---- last 60 lines of %s ----\n' "$ME" "$LOG_FILE" >&2
        tail -n 60 "$LOG_FILE" >&2 || true
        printf '[%s] ---- end of log tail ----\n' "$ME" >&2
        die "step failed (exit ${rc}): ${desc}"
    fi
}

# ---------------------------------------------------------------- arguments
[[ $# -ge 2 && $# -le 3 ]] || usage
case "$1" in -h|--help) usage ;; esac

SRC_TARBALL=$1
PREFIX=$2
CUDA_ARG=${3:-}

[[ -f "$SRC_TARBALL" ]] || die "source tarball not found: $SRC_TARBALL"
SRC_TARBALL=$(cd "$(dirname "$SRC_TARBALL")" && pwd)/$(basename "$SRC_TARBALL")
[[ -n "$PREFIX" && "$PREFIX" != "/" ]] || die "refusing PREFIX='$PREFIX'"
mkdir -p "$(dirname "$PREFIX")"
PREFIX=$(cd "$(dirname "$PREFIX")" && pwd)/$(basename "$PREFIX")

SCRATCH="${PREFIX}.src"
NVML_DIR="${PREFIX}.nvml"
STAMP="${PREFIX}/.axon-ucx-build.stamp"
OWNER_MARK="${PREFIX}/.axon-ucx-hermetic"
JOBS=${UCX_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

# ---------------------------------------------------------------- CUDA_HOME
CUDA_HOME_RESOLVED=""
if [[ -n "$CUDA_ARG" ]]; then
    if [[ "$CUDA_ARG" == none ]]; then
        CUDA_HOME_RESOLVED=""
    elif [[ -d "$CUDA_ARG" ]]; then
        CUDA_HOME_RESOLVED=$(cd "$CUDA_ARG" && pwd -P)
    else
        die "CUDA_HOME given as '$CUDA_ARG' but that directory does not exist (pass 'none' to build without CUDA)"
    fi
else
    cand=""
    if [[ -n "${CUDA_HOME:-}" ]]; then
        cand=$CUDA_HOME
    elif command -v nvcc >/dev/null 2>&1; then
        cand=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
    else
        cand=/usr/local/cuda
    fi
    if [[ -d "$cand" ]]; then
        CUDA_HOME_RESOLVED=$(cd "$cand" && pwd -P)
    else
        warn "no CUDA toolkit found (looked at '$cand'): building UCX WITHOUT CUDA support"
    fi
fi
if [[ -n "$CUDA_HOME_RESOLVED" ]]; then
    [[ -f "$CUDA_HOME_RESOLVED/include/cuda.h" ]] ||
        die "CUDA_HOME=$CUDA_HOME_RESOLVED has no include/cuda.h"
fi

# ---------------------------------------------------------------- up to date?
TARBALL_SHA256=$(sha256sum "$SRC_TARBALL" | cut -d' ' -f1)
BUILD_KEY="tarball_sha256=${TARBALL_SHA256} cuda_home=${CUDA_HOME_RESOLVED:-none} recipe=${RECIPE_VERSION}"

log "source tarball : $SRC_TARBALL"
log "tarball sha256 : $TARBALL_SHA256"
log "install prefix : $PREFIX"
log "CUDA_HOME      : ${CUDA_HOME_RESOLVED:-<none, CUDA disabled>}"

# Serialise concurrent invocations for the same PREFIX.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${PREFIX}.lock"
    flock 9
fi

if [[ -f "$PREFIX/lib/libucp.so" && -f "$STAMP" ]] && [[ "$(head -n1 "$STAMP")" == "$BUILD_KEY" ]]; then
    log "UCX already built in $PREFIX for this tarball/CUDA (stamp $STAMP): nothing to do"
    exit 0
fi

# ---------------------------------------------------------------- prefix hygiene
if [[ -d "$PREFIX" ]] && [[ -n "$(ls -A "$PREFIX" 2>/dev/null)" ]]; then
    [[ -f "$OWNER_MARK" ]] ||
        die "PREFIX $PREFIX exists, is not empty and was not created by this script; refusing to overwrite it"
    log "removing previous/stale install in $PREFIX"
    rm -rf "$PREFIX"
fi
mkdir -p "$PREFIX"
: >"$OWNER_MARK"

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
LOG_FILE=${UCX_BUILD_LOG:-$SCRATCH/build-ucx.log}
mkdir -p "$(dirname "$LOG_FILE")"
: >"$LOG_FILE"
log "full build log : $LOG_FILE"
START_TS=$(date +%s)

# ---------------------------------------------------------------- unpack
run_step "unpacking $(basename "$SRC_TARBALL") into $SCRATCH" \
    tar -xf "$SRC_TARBALL" -C "$SCRATCH"
SRC_DIR=$(find "$SCRATCH" -mindepth 1 -maxdepth 2 -name configure.ac -printf '%h\n' | head -n1)
[[ -n "$SRC_DIR" ]] || die "no configure.ac found in $SRC_TARBALL: is this a UCX source tarball?"
log "UCX source dir : $SRC_DIR"

# ---------------------------------------------------------------- tools
need_tools=()
have() { command -v "$1" >/dev/null 2>&1; }
have make || need_tools+=(make)
have cc || have gcc || need_tools+=(gcc g++)
if [[ ! -x "$SRC_DIR/configure" ]]; then
    have autoreconf || need_tools+=(autoconf)
    have automake   || need_tools+=(automake)
    have libtoolize || need_tools+=(libtool)
fi
if (( ${#need_tools[@]} > 0 )); then
    if [[ $(id -u) -eq 0 ]] && have apt-get; then
        log "installing missing build tools with apt-get: ${need_tools[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y --no-install-recommends "${need_tools[@]}" >>"$LOG_FILE" 2>&1; then
            run_step "apt-get update" apt-get update
            run_step "apt-get install ${need_tools[*]}" \
                apt-get install -y --no-install-recommends "${need_tools[@]}"
        fi
    else
        die "missing build tools (Debian package names): ${need_tools[*]}. Install them first, e.g. 'sudo apt-get install -y ${need_tools[*]}' (automatic install needs root and apt-get)"
    fi
fi

# ---------------------------------------------------------------- bootstrap
# Debian's orig tarball renames upstream's debian/ to debian.upstream/, but
# upstream configure.ac still lists debian/* in AC_CONFIG_FILES/LINKS, so
# automake fails with "required file 'debian/rules.in' not found". Restore it.
if [[ ! -e "$SRC_DIR/debian" && -d "$SRC_DIR/debian.upstream" ]] &&
   grep -q 'debian/' "$SRC_DIR/configure.ac"; then
    run_step "restoring upstream debian/ from debian.upstream/ (Debian orig tarball layout)" \
        cp -a "$SRC_DIR/debian.upstream" "$SRC_DIR/debian"
fi
if [[ ! -x "$SRC_DIR/configure" ]]; then
    run_step "no configure script: running ./autogen.sh" \
        bash -c 'cd "$1" && ./autogen.sh' _ "$SRC_DIR"
fi
[[ -x "$SRC_DIR/configure" ]] || die "autogen.sh did not produce $SRC_DIR/configure"

# ---------------------------------------------------------------- CUDA / NVML
CPPFLAGS_EXTRA=""
LDFLAGS_EXTRA=""
cuda_flags=(--without-cuda)
if [[ -n "$CUDA_HOME_RESOLVED" ]]; then
    cuda_flags=("--with-cuda=$CUDA_HOME_RESOLVED")
    cuda_ver=$(sed -n 's/^#define CUDA_VERSION \([0-9]*\).*/\1/p' "$CUDA_HOME_RESOLVED/include/cuda.h" | head -n1)
    cuda_major=$(( ${cuda_ver:-0} / 1000 ))
    cuda_minor=$(( (${cuda_ver:-0} % 1000) / 10 ))
    log "CUDA version   : ${cuda_major}.${cuda_minor}"

    # UCX's configure (config/m4/cuda.m4) requires nvml.h and a linkable
    # libnvidia-ml (AC_CHECK_LIB nvidia-ml nvmlInit) for the cuda transports.
    # There is no --with-nvml option in 1.13: we feed them in via CPPFLAGS/LDFLAGS.
    nvml_inc=""
    if [[ -n "${UCX_NVML_INCLUDE_DIR:-}" ]]; then
        [[ -f "$UCX_NVML_INCLUDE_DIR/nvml.h" ]] || die "UCX_NVML_INCLUDE_DIR=$UCX_NVML_INCLUDE_DIR has no nvml.h"
        nvml_inc=$UCX_NVML_INCLUDE_DIR
    elif [[ -f "$CUDA_HOME_RESOLVED/include/nvml.h" ]]; then
        nvml_inc=$CUDA_HOME_RESOLVED/include
    else
        if [[ -n "${UCX_NVML_PIP_SPEC:-}" ]]; then
            spec=$UCX_NVML_PIP_SPEC
        elif (( cuda_major >= 13 )); then
            spec="nvidia-nvml-dev==${cuda_major}.${cuda_minor}.*"
        elif (( cuda_major >= 11 )); then
            spec="nvidia-nvml-dev-cu${cuda_major}==${cuda_major}.${cuda_minor}.*"
        else
            die "CUDA ${cuda_major}.${cuda_minor} has no nvml.h and no known PyPI NVML package; set UCX_NVML_INCLUDE_DIR"
        fi
        py=${PYTHON:-python3}
        have "$py" || die "nvml.h is not in $CUDA_HOME_RESOLVED/include and '$py' is not available to pip-install '$spec'; set UCX_NVML_INCLUDE_DIR or install python3-pip"
        "$py" -m pip --version >/dev/null 2>&1 ||
            die "nvml.h is not in $CUDA_HOME_RESOLVED/include and '$py -m pip' does not work; install python3-pip or set UCX_NVML_INCLUDE_DIR"
        rm -rf "$NVML_DIR"
        mkdir -p "$NVML_DIR"
        # --target installs never touch the interpreter's site-packages; the
        # env var only silences PEP 668 "externally managed" refusals.
        run_step "pip-installing NVML headers ($spec) into $NVML_DIR" \
            env PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip install --disable-pip-version-check \
                --no-deps --no-input --target "$NVML_DIR" "$spec"
        nvml_h=$(find "$NVML_DIR" -name nvml.h -print | head -n1)
        [[ -n "$nvml_h" ]] || die "pip package '$spec' did not provide nvml.h (looked in $NVML_DIR)"
        nvml_inc=$(dirname "$nvml_h")
    fi
    log "nvml.h from    : $nvml_inc"
    CPPFLAGS_EXTRA="-I$nvml_inc"

    # Link-time libnvidia-ml: use the toolkit's stub when it has one, else
    # generate one from nvml.h. Its SONAME is libnvidia-ml.so.1, so at run
    # time libuct_cuda.so binds to the driver's real library; the stub is
    # never installed into PREFIX.
    nvml_stub_dir=""
    for d in "$CUDA_HOME_RESOLVED"/lib64/stubs "$CUDA_HOME_RESOLVED"/lib/stubs "$CUDA_HOME_RESOLVED"/targets/*/lib/stubs; do
        if [[ -e "$d/libnvidia-ml.so" ]]; then nvml_stub_dir=$d; break; fi
    done
    if [[ -z "$nvml_stub_dir" ]]; then
        nvml_stub_dir="$NVML_DIR/stubs"
        mkdir -p "$nvml_stub_dir"
        log "==> generating link-time stub $nvml_stub_dir/libnvidia-ml.so (SONAME libnvidia-ml.so.1)"
        cc_bin=$(command -v cc || command -v gcc)
        {
            "$cc_bin" -E -P -I"$nvml_inc" -x c - <<<'#include <nvml.h>'
            "$cc_bin" -E -P -I"$nvml_inc" -DNVML_NO_UNVERSIONED_FUNC_DEFS -x c - <<<'#include <nvml.h>'
        } 2>>"$LOG_FILE" | grep -oE '\bnvml[A-Za-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u \
            | awk 'BEGIN { print "/* generated link-time stub, never loaded at run time */" }
                   { printf "int %s(void) { return 999; /* NVML_ERROR_UNKNOWN */ }\n", $1 }' \
            >"$nvml_stub_dir/nvml_stub.c"
        grep -q ' nvmlInit(' "$nvml_stub_dir/nvml_stub.c" ||
            die "failed to extract NVML symbols from $nvml_inc/nvml.h"
        run_step "compiling libnvidia-ml stub ($(grep -c '^int' "$nvml_stub_dir/nvml_stub.c") symbols)" \
            "$cc_bin" -shared -fPIC -w -Wl,-soname,libnvidia-ml.so.1 \
                -o "$nvml_stub_dir/libnvidia-ml.so" "$nvml_stub_dir/nvml_stub.c"
    fi
    log "libnvidia-ml   : $nvml_stub_dir (link time only)"
    LDFLAGS_EXTRA="-L$nvml_stub_dir"
fi

# ---------------------------------------------------------------- configure
wanted_flags=(
    --disable-logging
    --disable-debug
    --disable-assertions
    --disable-params-check
    --enable-mt
    --enable-cma
    --without-verbs
    --without-rdmacm
    --without-go
    --without-java          # its Maven step downloads from the network
    # Hermeticity: do not silently pick up optional host libraries.
    --without-knem
    --without-xpmem
    --without-gdrcopy
    --without-rocm
    --without-ugni
    --without-fuse3
    --without-bfd
    --disable-numa
)
help_text=$("$SRC_DIR/configure" --help 2>/dev/null || true)
configure_flags=("--prefix=$PREFIX" "--libdir=$PREFIX/lib")
for f in "${wanted_flags[@]}"; do
    name=${f#--}; name=${name#with-}; name=${name#without-}; name=${name#enable-}; name=${name#disable-}
    if grep -qE -- "--(with|without|enable|disable)-${name}([^a-zA-Z0-9_-]|$)" <<<"$help_text"; then
        configure_flags+=("$f")
    else
        warn "configure of this UCX version does not know '$f': dropping it"
    fi
done
configure_flags+=("${cuda_flags[@]}")
# shellcheck disable=SC2206 # deliberate word splitting of a flag list
[[ -n "${UCX_EXTRA_CONFIGURE_FLAGS:-}" ]] && configure_flags+=(${UCX_EXTRA_CONFIGURE_FLAGS})

BUILD_DIR="$SCRATCH/build"
mkdir -p "$BUILD_DIR"
log "configure flags: ${configure_flags[*]}"
[[ -n "$CPPFLAGS_EXTRA" ]] && log "extra CPPFLAGS : $CPPFLAGS_EXTRA"
[[ -n "$LDFLAGS_EXTRA" ]] && log "extra LDFLAGS  : $LDFLAGS_EXTRA"
run_step "configuring UCX" \
    env CPPFLAGS="${CPPFLAGS:+$CPPFLAGS }$CPPFLAGS_EXTRA" LDFLAGS="${LDFLAGS:+$LDFLAGS }$LDFLAGS_EXTRA" \
    bash -c 'cd "$1" && shift && exec "$@"' _ "$BUILD_DIR" "$SRC_DIR/configure" "${configure_flags[@]}"

if [[ -n "$CUDA_HOME_RESOLVED" ]]; then
    grep -q '^#define HAVE_CUDA 1' "$BUILD_DIR/config.h" ||
        die "configure did not enable CUDA although CUDA_HOME=$CUDA_HOME_RESOLVED (see 'checking' lines for cuda/nvml in $LOG_FILE)"
    log "configure: CUDA support enabled"
fi

# ---------------------------------------------------------------- build + install
# Library subdirectories plus ucx_info and ucx_perftest. Not test/apps,
# examples, gtest or bindings.
subdirs=(src/ucm src/ucs src/uct src/ucp src/tools/info src/tools/perf)
for d in "${subdirs[@]}"; do
    run_step "building $d (make -j$JOBS)" make -C "$BUILD_DIR/$d" -j"$JOBS"
    run_step "installing $d" make -C "$BUILD_DIR/$d" install
done
run_step "installing pkg-config file (ucx.pc)" make -C "$BUILD_DIR" install-pkgconfigDATA
if [[ -f "$BUILD_DIR/cmake/Makefile" ]]; then
    run_step "installing CMake package files (ucx-config.cmake)" make -C "$BUILD_DIR/cmake" install
fi

# ---------------------------------------------------------------- sanity checks
[[ -e "$PREFIX/lib/libucp.so" ]] || die "install finished but $PREFIX/lib/libucp.so is missing"
[[ -f "$PREFIX/include/ucp/api/ucp.h" ]] || die "install finished but $PREFIX/include/ucp/api/ucp.h is missing"
if [[ -n "$CUDA_HOME_RESOLVED" ]]; then
    [[ -e "$PREFIX/lib/ucx/libuct_cuda.so" ]] ||
        die "CUDA was requested but $PREFIX/lib/ucx/libuct_cuda.so was not built"
fi
log "installed transport modules: $(cd "$PREFIX/lib/ucx" 2>/dev/null && ls -- *.so 2>/dev/null | tr '\n' ' ' || true)"
if [[ -x "$PREFIX/bin/ucx_info" ]]; then
    ver=$(LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PREFIX/bin/ucx_info" -v 2>&1 | head -n1 || true)
    log "ucx_info -v    : $ver"
fi
[[ -x "$PREFIX/bin/ucx_perftest" ]] || die "install finished but $PREFIX/bin/ucx_perftest is missing"

printf '%s\n' "$BUILD_KEY" >"$STAMP"
printf 'built=%s\nconfigure=%s\nCPPFLAGS+=%s\nLDFLAGS+=%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${configure_flags[*]}" "$CPPFLAGS_EXTRA" "$LDFLAGS_EXTRA" >>"$STAMP"
log "done in $(( $(date +%s) - START_TS ))s: UCX installed in $PREFIX"
