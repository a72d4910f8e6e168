#!/usr/bin/env bash
# Installs what crib needs to build, run and test on Debian 12, from Debian's own packages.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libspdlog-dev libfmt-dev libtomlplusplus-dev libsqlite3-dev nlohmann-json3-dev
  libnl-3-dev libnl-route-3-dev libseccomp-dev libcurl4-openssl-dev libarchive-dev
  libssl-dev libnftables-dev libzstd-dev zlib1g-dev libsystemd-dev
  libgtest-dev libgmock-dev
  # run: what the CNI plugins run (crib itself spawns only its helpers and the plugins)
  iptables
  # test: a real registry, test image content, real CNI plugins, the tools the tests look at
  # the machine with (ip, nft, ping, sqlite3), the cri-compat check, a Prometheus text parser,
  # a real systemd and system bus in namespaces of their own (tests/systemd)
  docker-registry apache2-utils zstd busybox-static containernetworking-plugins python3
  iproute2 nftables iputils-ping sqlite3 python3-prometheus-client systemd dbus
  # the OCI runtimes the runtime handler tests run pods under
  runc crun
)

# The streaming tests drive crib with Node.js clients (npm packages spdy-transport and ws, which
# the tests install themselves). A node and npm from elsewhere (e.g. NodeSource, whose nodejs
# package ships npm) serve as well; otherwise Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
