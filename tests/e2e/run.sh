#!/usr/bin/env bash
# Browser end-to-end test of ProLiteMeet Server: installs what is missing (Debian's
# Chromium and coturn, the npm packages), builds the server unless SERVER_BIN is set, and
# runs the calls in real headless Chromium pages (one of them relayed through coturn).
#
#   tests/e2e/run.sh
#
# Environment:
#   SERVER_BIN     server binary to test (default: cargo build, then target/debug/prolitemeet-server)
#   CHROMIUM_PATH  browser (default /usr/bin/chromium, installed with apt-get if absent)
#   E2E_NETNS      auto (default): run inside a fresh network namespace that has only
#                  loopback (unshare -rn), like a loopback-only CI sandbox, when this machine
#                  allows it; 1: require it; 0: use the machine's network as it is
#   E2E_ICE, E2E_FRONTEND_URL: see README.md
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
started=$SECONDS

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    echo "run.sh: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
    exit 1
  fi
  echo "run.sh: installing Debian's chromium"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# coturn: the TURN server the relay call's media must go through (the harness starts it).
if ! command -v turnserver >/dev/null; then
  echo "run.sh: installing Debian's coturn"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y coturn
fi

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ ! -f node_modules/socket.io-client/dist/socket.io.min.js ] \
  || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

if [ -z "${SERVER_BIN:-}" ]; then
  (cd "$root" && cargo build)
  export SERVER_BIN="$root/target/debug/prolitemeet-server"
fi

netns="${E2E_NETNS:-auto}"
use_netns=0
if [ "$netns" != 0 ]; then
  if command -v unshare >/dev/null && command -v ip >/dev/null \
    && unshare -rn sh -c 'ip link set lo up' 2>/dev/null; then
    use_netns=1
  elif [ "$netns" = 1 ]; then
    echo "run.sh: E2E_NETNS=1 but cannot create a network namespace (unshare -rn, ip)" >&2
    exit 1
  fi
fi

status=0
if [ "$use_netns" = 1 ]; then
  echo "run.sh: running in a loopback-only network namespace"
  unshare -rn sh -c 'ip link set lo up && exec npm test' || status=$?
else
  npm test || status=$?
fi
echo "run.sh: e2e $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
[ "$status" = 0 ] || echo "run.sh: screenshots, page states and logs in $here/artifacts/" >&2
exit "$status"
