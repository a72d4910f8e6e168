#!/usr/bin/env bash
# The README's second command (and CI's): installs the Debian packages, builds crib with its
# tests, and runs every test with ctest. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the tests create namespaces, mounts, cgroups)" >&2; exit 1; }

./scripts/install-deps.sh
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 -j 2
