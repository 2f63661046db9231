#!/usr/bin/env bash
# Builds axon, shows the main job (`axon demo`: two local daemons, three
# clients, tensors between them, how fast), then starts axond in the
# foreground with its embedded default config: no root, nothing in /etc, the
# control socket under ./run/.
# In another terminal: export AXON_SOCKET=$PWD/run/axond.sock; build/client/axonctl status
# AXON_SKIP_DEMO=1 skips the demo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/build.sh" "$repo/build"
mkdir -p "$repo/run"
if [[ -z "${AXON_SKIP_DEMO:-}" ]]; then
  "$repo/build/client/axon" demo --run-dir "$repo/run/demo"
  echo
fi
export AXON_SOCKET=$repo/run/axond.sock
echo "axond: control socket $AXON_SOCKET (Ctrl-C stops it)" >&2
exec "$repo/build/daemon/axond" "$@"
