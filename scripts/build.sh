#!/usr/bin/env bash
# Configures and builds crib into build/ (two parallel jobs: this is a 2-core machine and the
# generated gRPC code is heavy).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "${CRIB_BUILD_JOBS:-2}"
