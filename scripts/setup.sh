#!/usr/bin/env bash
# The README's first command: installs the Debian packages, builds crib, installs the default
# configuration if there is none, and starts cribd on /run/crib/crib.sock, ready for crictl:
# as the systemd service crib.service (etc/crib.service) when systemd is the init, else as a
# background process of its own session.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root" >&2; exit 1; }

./scripts/install-deps.sh
./scripts/build.sh cribd crib-monitor crib-pause crib-fetch

if [ ! -e /etc/crib/config.toml ]; then
  install -D -m 0644 etc/config.toml /etc/crib/config.toml
  echo "installed /etc/crib/config.toml"
fi

socket=$(sed -n 's/^socket *= *"\(.*\)"/\1/p' /etc/crib/config.toml)
socket=${socket:-/run/crib/crib.sock}
state=$(sed -n 's/^state_dir *= *"\(.*\)"/\1/p' /etc/crib/config.toml)
state=${state:-/run/crib}

# A cribd already running from an earlier setup is stopped gracefully (pods keep running).
if [ -s "$state/cribd.lock" ]; then
  old=$(cat "$state/cribd.lock")
  if kill -0 "$old" 2>/dev/null && [ "$(cat /proc/"$old"/comm 2>/dev/null)" = cribd ]; then
    echo "stopping the running cribd (pid $old)"
    kill -TERM "$old"
    for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
fi

if [ -d /run/systemd/system ]; then
  sed "s|@CRIBD@|$PWD/build/src/cribd/cribd|" etc/crib.service >/etc/systemd/system/crib.service
  systemctl daemon-reload
  systemctl enable crib.service >/dev/null
  # Type=notify: this returns once the socket serves, or fails.
  systemctl restart crib.service || { journalctl -u crib.service -n 20 --no-pager >&2; exit 1; }
  echo "cribd runs as crib.service and serves unix://$socket; log: journalctl -u crib.service"
  echo "try: crictl --runtime-endpoint unix://$socket version"
  exit 0
fi

mkdir -p /var/log/crib
setsid build/src/cribd/cribd </dev/null >>/var/log/crib/cribd.log 2>&1 &
pid=$!
for _ in $(seq 200); do
  [ -S "$socket" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "cribd failed to start:" >&2; tail -n 20 /var/log/crib/cribd.log >&2; exit 1; }
  sleep 0.05
done
[ -S "$socket" ] || { echo "cribd did not create $socket" >&2; exit 1; }
echo "cribd (pid $pid) serves unix://$socket; log: /var/log/crib/cribd.log"
echo "try: crictl --runtime-endpoint unix://$socket version"
