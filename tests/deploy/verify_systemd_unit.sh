#!/usr/bin/env bash
# Runs `systemd-analyze verify` on deploy/systemd/axond.service, with ExecStart
# pointed at the axond just built. Exit 77 (skipped) without systemd-analyze.
# Usage: verify_systemd_unit.sh DEPLOY_DIR AXOND_BINARY
set -euo pipefail
deploy=$1
axond=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/bin/axond|ExecStart=$axond|" "$deploy/axond.service" >"$work/axond.service"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work/axond.service" 2>&1) || {
  echo "$out"; exit 1; }
# verify exits 0 on some warnings; treat any line about our unit as a failure.
if grep -i "axond.service" <<<"$out"; then exit 1; fi
echo "systemd-analyze verify: axond.service OK"
