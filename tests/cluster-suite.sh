#!/usr/bin/env bash
# Runs the protocol and REST suites again over a two-instance cluster: a private Redis on a
# free loopback port, every test's clients and HTTP requests alternating between two
# instances. The Rust suites (tests/signaling.rs, tests/http.rs, tests/moderation.rs; see TestServer in
# tests/common/mod.rs) and the JavaScript socket.io-client suite (tests/client/; see
# startServer in its helpers.js). Needs redis-server (Debian: redis-server), Node.js and npm.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
redis-cli -p "$port" ping | grep -q PONG || { echo "redis-server did not start" >&2; cat "$dir/redis.log" >&2; exit 1; }

export TEST_CLUSTER_REDIS="redis://127.0.0.1:$port"
cargo test --locked --test signaling --test http --test moderation "$@"
cargo build --locked
(cd tests/client && npm ci --no-audit --no-fund && npm test)
