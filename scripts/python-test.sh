#!/usr/bin/env bash
# Builds and installs the axon Python package with pip (scikit-build-core and
# nanobind from PyPI, into the virtual environment build/venv), then runs its
# pytest suite against the daemon of the normal build (build/daemon/axond:
# run scripts/build.sh first). Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$repo/build/venv
python=${PYTHON:-python3}
run() { echo "==> $*" >&2; "$@"; }

[[ -x $venv/bin/python ]] || run "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# kubernetes-validate and PyYAML: the Kubernetes manifests' check
# (tests/deploy/test_k8s_manifests.py), run here with the package's suite.
run "${pip[@]}" install "scikit-build-core>=0.10" "nanobind>=2.4" pytest numpy \
  "kubernetes-validate>=1.30" pyyaml
# Built in place against the repository's CMake (build/pip/ keeps the build
# for the next run).
run "${pip[@]}" install --no-build-isolation "$repo/python"
AXON_AXOND=${AXON_AXOND:-$repo/build/daemon/axond} \
  run "$venv/bin/python" -m pytest -q "$repo/python/tests" \
  "$repo/tests/deploy/test_k8s_manifests.py" "$@"
