#!/usr/bin/env bash
# Configures and builds crib into build/ (two parallel jobs: this is a 2-core machine and the
# generated gRPC code is heavy). With arguments, only those targets (setup.sh builds what
# running crib needs: cribd, crib-monitor, crib-pause, crib-fetch); without, everything, tests
# included.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
targets=()
for target in "$@"; do targets+=(--target "$target"); done
cmake --build build -j "${CRIB_BUILD_JOBS:-2}" "${targets[@]}"
