#!/usr/bin/env bash
# Runs cri-tools' critest against a running cribd. Extra arguments go to critest
# (e.g. --ginkgo.focus=Version).
set -euo pipefail
socket=${CRIB_SOCKET:-/run/crib/crib.sock}
command -v critest >/dev/null || { echo "critest is not installed (cri-tools; not in Debian 12)" >&2; exit 1; }
[ -S "$socket" ] || { echo "no cribd socket at $socket: run ./scripts/setup.sh first" >&2; exit 1; }
exec critest --runtime-endpoint "unix://$socket" --image-endpoint "unix://$socket" "$@"
