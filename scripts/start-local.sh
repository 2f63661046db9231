#!/usr/bin/env bash
# Builds axon and starts axond in the foreground with its embedded default
# config: no root, nothing in /etc, the control socket under ./run/.
# In another terminal: export AXON_SOCKET=$PWD/run/axond.sock; build/client/axonctl status
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/build.sh" "$repo/build"
mkdir -p "$repo/run"
export AXON_SOCKET=$repo/run/axond.sock
echo "axond: control socket $AXON_SOCKET (Ctrl-C stops it)" >&2
exec "$repo/build/daemon/axond" "$@"
