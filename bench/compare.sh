#!/usr/bin/env bash
# ProLiteMeet benchmark: the Rust server against the Node original, side by side.
#
#   bench/compare.sh [options] SCENARIO [loadgen options]    one scenario, both servers
#   bench/compare.sh [options] find-max fanout|relay [loadgen options]
#                                      raise the rate until p99 > 50 ms or loss > 0.1 %
#   bench/compare.sh [options] suite   every measurement of docs/PERFORMANCE.md's suite table + chart
#   bench/compare.sh [options] cluster [--rate R[,R...]] [--rounds N] [fanout options]
#   bench/compare.sh [options] cluster find-max [fanout options]
#                                      our server in cluster mode (Redis): fanout against one
#                                      instance, two instances (every room spread over both)
#                                      and, for reference, one instance without Redis
#   bench/compare.sh --smoke           a few seconds: the tools work (CI)
#
# SCENARIO is one of loadgen's: idle, fanout, relay, churn, storm (see `target/release/loadgen -h`).
# storm: K times 3,000 clients (say) connect and join, then leave at once; the table gives how
# far above its pre-storm RSS the server stays 10 s after each storm (memory given back).
# Each measured run gets a fresh server pinned to CPU $SERVER_CPU (0) while the load
# generator runs on CPU $LOADGEN_CPU (1); both see `ulimit -n` raised as far as allowed. The
# server's memory is read from /proc/PID/status. Results go to bench/results/ as JSON (plus a
# PNG chart when python3 has matplotlib); the table comes last, then a one-line summary.
#
# cluster: each run gets a fresh private redis-server (free loopback port, no persistence)
# and fresh instances. All instances share CPU $SERVER_CPU, so two instances get the same
# core budget as one and the comparison shows the cost of crossing instances, not the gain
# of a second core (INSTANCE_CPUS="0 1" gives instance k the k-th CPU instead, to measure
# what sharing a core costs them); Redis runs on CPU $REDIS_CPU (default: the load
# generator's). Fanout
# options default to --rooms 100 --size 5 --duration 5, rates to $CLUSTER_RATES.
#
# Options:
#   --servers "ours node"   which servers to run, in order        [ours node]
#   --ours CMD              our server          [target/release/prolitemeet-server]
#   --node CMD              the baseline        [node bench/baseline-node/server.js]
#   --out DIR               where results go                       [bench/results]
#   --no-build              use the binaries as they are
#   --server-env "K=V ..."  extra environment for both servers (e.g. RUST_LOG=info)
#   --start R, --factor F, --max-rate R, --steps N, --refine N   find-max search
#   --p99-ms MS, --max-loss FRACTION                              find-max limits [50, 0.001]
#   --setups "redis1 redis2 mem1"  cluster: what to run, in order (redisN: N instances on
#                           one Redis, ports BENCH_PORT.., mem1: one instance, no Redis)
#   --rounds N              cluster at fixed rates: run the setups N times, alternating, and
#                           report each round's ratio to memory mode and their median (one
#                           run's CPU figures vary by ~15 % on a shared VM)          [1]
#   --smoke                 tiny runs of every scenario (and a two-instance cluster fanout
#                           and bench/chat_lua.py when redis-server is installed); exits
#                           non-zero if a tool fails
# Environment: SERVER_CPU, LOADGEN_CPU, REDIS_CPU, INSTANCE_CPUS, OURS_CMD, NODE_CMD, BENCH_PORT (3811),
# PYTHON, REDIS_SERVER (redis-server), CLUSTER_RATES (4000,16000); CI: a missing
# redis-server fails the smoke run instead of skipping its cluster part.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
SERVER_CPU="${SERVER_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
REDIS_CPU="${REDIS_CPU:-$LOADGEN_CPU}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
CLUSTER_RATES="${CLUSTER_RATES:-4000,16000}"
SETUPS="redis1 redis2 mem1"
PORT="${BENCH_PORT:-3811}"
SERVERS="ours node"
OURS_CMD="${OURS_CMD:-}"
NODE_CMD="${NODE_CMD:-node bench/baseline-node/server.js}"
OUT="$BENCH_DIR/results"
BUILD=1
SMOKE=0
PROFILE=release
START=""
FACTOR=1.5
MAX_RATE=400000
STEPS=14
REFINE=2
P99_MS=50
MAX_LOSS=0.001
MAX_FOREIGN="${MAX_FOREIGN:-0.1}"
RETRIES="${RETRIES:-2}"
SOURCE_IPS="127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4"
EXTRA_ENV=()

usage() { sed -n '2,/^set -euo/p' "$BENCH_DIR/compare.sh" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --servers) SERVERS="$2"; shift 2 ;;
        --setups) SETUPS="$2"; shift 2 ;;
        --ours) OURS_CMD="$2"; shift 2 ;;
        --node) NODE_CMD="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --server-env) read -r -a EXTRA_ENV <<<"$2"; shift 2 ;;
        --start) START="$2"; shift 2 ;;
        --factor) FACTOR="$2"; shift 2 ;;
        --max-rate) MAX_RATE="$2"; shift 2 ;;
        --steps) STEPS="$2"; shift 2 ;;
        --refine) REFINE="$2"; shift 2 ;;
        --p99-ms) P99_MS="$2"; shift 2 ;;
        --max-loss) MAX_LOSS="$2"; shift 2 ;;
        --smoke) SMOKE=1; PROFILE=debug; shift ;;
        -h|--help) usage; exit 0 ;;
        *) break ;;
    esac
done
if [[ $SMOKE -eq 0 && $# -eq 0 ]]; then
    usage >&2
    exit 2
fi
# The cluster mode runs our server only (no npm for the baseline).
if [[ $SMOKE -eq 0 && $1 == cluster ]]; then SERVERS="ours"; fi

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OURS_CMD="${OURS_CMD:-$TARGET_DIR/$PROFILE/prolitemeet-server}"
LOADGEN="$TARGET_DIR/$PROFILE/loadgen"

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "python3 is needed (JSON and the table)"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
command -v curl >/dev/null || die "curl is needed"

# ---- build ------------------------------------------------------------------------------
if [[ $BUILD -eq 1 ]]; then
    if [[ $PROFILE == release ]]; then
        log "cargo build --release -p prolitemeet-server -p loadgen"
        cargo build --release --locked -p prolitemeet-server -p loadgen >&2
    else
        log "cargo build -p prolitemeet-server -p loadgen"
        cargo build --locked -p prolitemeet-server -p loadgen >&2
    fi
    if [[ " $SERVERS " == *" node "* ]]; then
        if [[ ! -d "$BENCH_DIR/baseline-node/node_modules" ]]; then
            log "npm ci in bench/baseline-node"
            (cd "$BENCH_DIR/baseline-node" && npm ci --no-audit --no-fund >&2)
        fi
    fi
fi
[[ -x "$LOADGEN" ]] || die "no load generator at $LOADGEN (build it, or drop --no-build)"

# Raise the file-descriptor limit for everything started from here (servers, loadgen).
HARD_NOFILE="$(ulimit -Hn)"
if [[ "$HARD_NOFILE" == unlimited ]]; then HARD_NOFILE=1048576; fi
ulimit -n "$HARD_NOFILE" 2>/dev/null || true
NOFILE="$(ulimit -n)"

mkdir -p "$OUT"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/prolitemeet-bench.XXXXXX")"
RUNS="$WORK/runs.jsonl"
: > "$RUNS"
SERVER_PID=""   # the first instance (the only one but in the cluster mode)
SERVER_PIDS=()  # every instance of the current setup
REDIS_PID=""
REDIS_PORT=""

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}" $REDIS_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${SERVER_PIDS[@]}" $REDIS_PID; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- setups: one server, or a cluster -----------------------------------------------------
# A setup is what run_one starts: `ours` or `node` (one server), or, for the cluster mode,
# `mem1` (one instance of ours, no Redis) or `redisN` (N instances of ours in cluster mode on
# a fresh private Redis, on ports $PORT .. $PORT+N-1).
is_cluster_setup() { [[ $1 =~ ^redis[1-9]$ ]]; }
instances_of() { if is_cluster_setup "$1"; then echo "${1#redis}"; else echo 1; fi; }

server_cmd() {
    case "$1" in
        ours|mem1) echo "$OURS_CMD" ;;
        node) echo "$NODE_CMD" ;;
        *)
            is_cluster_setup "$1" || die "unknown server $1 (ours or node; cluster: mem1, redis1 .. redis9)"
            echo "$OURS_CMD"
            ;;
    esac
}

# host:port of each instance of a setup, comma separated (loadgen's --url).
target_urls() {
    local n k urls=()
    n="$(instances_of "$1")"
    for ((k = 0; k < n; k++)); do urls+=("127.0.0.1:$((PORT + k))"); done
    (IFS=,; echo "${urls[*]}")
}

# The environment both servers get: rate limits and caps off, per-event logs off.
SERVER_ENV=(
    HOST=127.0.0.1 "PORT=$PORT" NODE_ENV=production
    CHAT_RATE_PER_SEC=0 SIGNAL_RATE_PER_SEC=0 JOIN_RATE_PER_SEC=0 RATE_LIMIT_DISCONNECT_AFTER=0
    ROOM_CREATE_RATE_PER_SEC=0 MAX_ROOMS_PER_ADDRESS=0
    MAX_CONNECTIONS=0 MAX_ROOMS=0 MAX_PARTICIPANTS=1000 EMPTY_ROOM_TTL_SECS=0
    LOG_FORMAT=text RUST_LOG=warn
)
SERVER_ENV+=("${EXTRA_ENV[@]}")

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# redis_cmd ARG...: one command to our Redis over RESP (no redis-cli needed); the reply's
# text on stdout.
redis_cmd() {
    "$PYTHON" - "$REDIS_PORT" "$@" <<'EOF'
import socket, sys
port, args = int(sys.argv[1]), sys.argv[2:]
req = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
    s.sendall(req.encode())
    f = s.makefile("rb")
    line = f.readline().decode().rstrip("\r\n")
    if line.startswith("$"):
        print(f.read(int(line[1:])).decode() if int(line[1:]) >= 0 else "")
    elif line.startswith("-") or not line:
        sys.exit(f"redis: {line or 'no reply'}")
    else:
        print(line[1:])
EOF
}

# A fresh, empty Redis for one run: free loopback port, no persistence, files in $WORK.
start_redis() {
    REDIS_PORT="$(free_port)"
    rm -rf "$WORK/redis"
    mkdir -p "$WORK/redis"
    (exec taskset -c "$REDIS_CPU" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$WORK/redis" --daemonize no --loglevel warning) \
        >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    local i
    for i in $(seq 1 100); do
        [[ "$(redis_cmd PING 2>/dev/null)" == PONG ]] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/redis.log" >&2
    die "$REDIS_SERVER did not answer on port $REDIS_PORT"
}

stop_pids() {
    local pid i alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 1 50); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 1 ]] || break
        sleep 0.1
    done
    for pid in "$@"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# The CPU instance k runs on: the k-th of $INSTANCE_CPUS, or $SERVER_CPU. Only the
# instances move: "foreign load" is still read on $SERVER_CPU.
instance_cpu() {
    local cpus
    read -r -a cpus <<<"${INSTANCE_CPUS:-}"
    echo "${cpus[$1]:-$SERVER_CPU}"
}

start_server() {
    local name="$1" cmd n k port
    cmd="$(server_cmd "$name")"
    n="$(instances_of "$name")"
    # Memory mode unless the setup says otherwise, whatever the calling shell exports.
    local cluster_env=()
    if is_cluster_setup "$name"; then
        start_redis
        cluster_env=("REDIS_URL=redis://127.0.0.1:$REDIS_PORT" "REDIS_PREFIX=bench")
    fi
    SERVER_PIDS=()
    for ((k = 0; k < n; k++)); do
        port=$((PORT + k))
        # Word splitting of $cmd is wanted: it is a command line.
        # shellcheck disable=SC2086
        (exec env -u REDIS_URL -u REDIS_PREFIX "${SERVER_ENV[@]}" "PORT=$port" "${cluster_env[@]}" \
            taskset -c "$(instance_cpu "$k")" $cmd) >"$WORK/$name.$k.log" 2>&1 &
        SERVER_PIDS+=($!)
    done
    SERVER_PID="${SERVER_PIDS[0]}"
    local i
    for ((k = 0; k < n; k++)); do
        port=$((PORT + k))
        for i in $(seq 1 101); do
            if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
                continue 2
            fi
            kill -0 "${SERVER_PIDS[k]}" 2>/dev/null || { cat "$WORK/$name.$k.log" >&2; die "$name (instance $k) exited at start"; }
            sleep 0.1
        done
        cat "$WORK/$name.$k.log" >&2
        die "$name did not answer /health on port $port"
    done
}

stop_server() {
    if [[ ${#SERVER_PIDS[@]} -gt 0 ]]; then stop_pids "${SERVER_PIDS[@]}"; fi
    SERVER_PIDS=()
    SERVER_PID=""
    if [[ -n "$REDIS_PID" ]]; then stop_pids "$REDIS_PID"; fi
    REDIS_PID=""
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# status_kb summed over the instances, and each instance's (space separated).
instances_kb() {
    local pid v sum=0 each=()
    for pid in "${SERVER_PIDS[@]}"; do
        v="$(status_kb "$pid" "$1")"
        v="${v:-0}"
        sum=$((sum + v))
        each+=("$v")
    done
    echo "$sum" "${each[*]}"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
instances_ticks() {
    local pid t=0
    for pid in "${SERVER_PIDS[@]}"; do t=$((t + $(cpu_ticks "$pid"))); done
    echo "$t"
}
# "busy total" ticks of one CPU, from /proc/stat (to see load from other processes).
# For one CPU, from /proc/stat: busy ticks (all but idle and iowait), ticks spent by processes
# (user, nice, system) or stolen by the hypervisor, and all ticks.
core_ticks() { awk -v c="cpu$1" '$1 == c { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
CLK_TCK="$(getconf CLK_TCK)"

loadgen() { taskset -c "$LOADGEN_CPU" "$LOADGEN" "$@"; }

has_arg() { local want="$1"; shift; local a; for a in "$@"; do [[ "$a" == "$want" ]] && return 0; done; return 1; }

# run_one SETUP PHASE SCENARIO [loadgen args]: fresh server(s) (and Redis), warm-up, one
# measured run; appends a JSON record to $RUNS and prints it on stdout.
run_one() {
    local name="$1" phase="$2" scenario="$3"
    shift 3
    local args=("$@") urls
    urls="$(target_urls "$name")"
    has_arg --url "${args[@]}" || args+=(--url "$urls")
    has_arg --source-ips "${args[@]}" || args+=(--source-ips "$SOURCE_IPS")
    start_server "$name"
    # The CPU of each instance (and Redis) over the measured window of paced runs.
    # storm: the server's RSS around each storm (the first pid).
    if [[ $scenario == fanout || $scenario == relay || $scenario == storm ]] && ! has_arg --watch-pids "${args[@]}"; then
        args+=(--watch-pids "$(IFS=,; echo "${SERVER_PIDS[*]}")${REDIS_PID:+,$REDIS_PID}")
    fi
    local rss_start rss_loaded="" ready="$WORK/ready"
    rss_start="$(instances_kb VmRSS)"
    # Warm-up on the fresh server (fanout and relay also warm up inside loadgen, --warmup).
    case "$scenario" in
        idle|storm) loadgen idle --clients 200 --room-size 5 --hold 0 --url "$urls" >/dev/null 2>&1 || true ;;
        churn) loadgen churn --clients 10 --cycles 5 --url "$urls" --source-ips "$SOURCE_IPS" >/dev/null 2>&1 || true ;;
    esac
    [[ $scenario == idle ]] && sleep 1
    local rss_warm cpu0 t0 out status=0 redis0=0
    rss_warm="$(instances_kb VmRSS)"
    cpu0="$(instances_ticks)"
    [[ -n "$REDIS_PID" ]] && redis0="$(cpu_ticks "$REDIS_PID")"
    local sc0 lc0
    sc0="$(core_ticks "$SERVER_CPU")"
    lc0="$(core_ticks "$LOADGEN_CPU")"
    t0="$(date +%s.%N)"
    rm -f "$ready"
    if [[ $scenario == idle ]]; then
        has_arg --hold "${args[@]}" || args+=(--hold 6)
        loadgen idle "${args[@]}" --ready-file "$ready" >"$WORK/out.json" 2>"$WORK/loadgen.err" &
        local lg=$!
        while kill -0 "$lg" 2>/dev/null && [[ ! -s "$ready" ]]; do sleep 0.2; done
        if [[ -s "$ready" ]]; then
            sleep 3 # let the last joins' broadcasts and allocations settle
            rss_loaded="$(instances_kb VmRSS)"
        fi
        wait "$lg" || status=$?
    else
        loadgen "$scenario" "${args[@]}" >"$WORK/out.json" 2>"$WORK/loadgen.err" || status=$?
    fi
    local t1 cpu1 rss_end hwm redis1=0
    t1="$(date +%s.%N)"
    cpu1="$(instances_ticks)"
    [[ -n "$REDIS_PID" ]] && redis1="$(cpu_ticks "$REDIS_PID")"
    local sc1 lc1
    sc1="$(core_ticks "$SERVER_CPU")"
    lc1="$(core_ticks "$LOADGEN_CPU")"
    rss_end="$(instances_kb VmRSS)"
    hwm="$(instances_kb VmHWM)"
    local alive=true pid
    for pid in "${SERVER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || alive=false; done
    # Redis: what it was asked (per command) and its memory, for the record.
    local redis_json="null"
    if [[ -n "$REDIS_PID" ]]; then
        redis_json="$("$PYTHON" - "$(redis_cmd INFO commandstats 2>/dev/null || true)" \
            "$(redis_cmd INFO memory 2>/dev/null || true)" "$(status_kb "$REDIS_PID" VmHWM)" \
            "$redis0" "$redis1" "$REDIS_CPU" <<'EOF'
import json, sys
stats, memory, hwm, t0, t1, cpu = sys.argv[1:]
calls = {}
for line in stats.splitlines():
    if line.startswith("cmdstat_"):
        name, _, rest = line[len("cmdstat_"):].partition(":")
        kv = dict(p.split("=", 1) for p in rest.split(","))
        calls[name] = {"calls": int(kv["calls"]), "usec": int(kv["usec"])}
mem = dict(l.split(":", 1) for l in memory.splitlines() if ":" in l)
print(json.dumps({"cpu_core": cpu, "ticks": int(t1) - int(t0), "rss_peak_kb": int(hwm or 0),
                  "used_memory_peak": int(mem.get("used_memory_peak", 0)),
                  "commands": dict(sorted(calls.items(), key=lambda kv: -kv[1]["usec"]))}))
EOF
)"
    fi
    local pids="${SERVER_PIDS[*]}"
    stop_server
    out="$(cat "$WORK/out.json")"
    if [[ $status -ne 0 || -z "$out" ]]; then
        cat "$WORK/loadgen.err" >&2
        out='{"error":"loadgen failed"}'
    fi
    "$PYTHON" - "$name" "$phase" "$scenario" "$(server_cmd "$name")" "$rss_start" "$rss_warm" \
        "${rss_loaded:-0}" "$rss_end" "$hwm" "$cpu0" "$cpu1" "$CLK_TCK" "$t0" "$t1" "$alive" \
        "$out" "${args[*]}" "$sc0" "$sc1" "$lc0" "$lc1" "$urls" "$pids" "$redis_json" \
        "$SERVER_CPU" "$LOADGEN_CPU" >>"$RUNS" <<'EOF'
import json, sys
(name, phase, scenario, cmd, rss_start, rss_warm, rss_loaded, rss_end, hwm, cpu0, cpu1, tck,
 t0, t1, alive, out, args, sc0, sc1, lc0, lc1, urls, pids, redis, server_core,
 loadgen_core) = sys.argv[1:]
wall = float(t1) - float(t0)
tck = int(tck)
def busy(a, b):
    (b0, _, t0_), (b1, _, t1_) = map(int, a.split()), map(int, b.split())
    return round((b1 - b0) / max(t1_ - t0_, 1), 3)
def kb(v):
    """'sum each...' as written by instances_kb: the sum, and each instance's."""
    parts = [int(x) for x in v.split()] or [0]
    return parts[0], parts[1:]
redis = json.loads(redis)
# Share of the server's core used by other processes (or stolen): process time on that core
# minus the server's own (every instance; Redis too when it shares the core). Softirq
# (loopback TCP) is not counted; it is the server's traffic.
(_, p0, t0_), (_, p1, t1_) = map(int, sc0.split()), map(int, sc1.split())
own = int(cpu1) - int(cpu0)
if redis and redis["cpu_core"] == server_core:
    own += redis["ticks"]
foreign = max(0.0, ((p1 - p0) - own) / max(t1_ - t0_, 1))
lg = json.loads(out)
ports = [u.rsplit(":", 1)[1] for u in urls.split(",")]
hwm_sum, hwm_each = kb(hwm)
watched = lg.get("watched_cpu") or []
rec = {
    "server": name, "phase": phase, "scenario": scenario, "command": cmd, "args": args,
    "rss_kb": {"start": kb(rss_start)[0], "warm": kb(rss_warm)[0], "loaded": kb(rss_loaded)[0],
               "end": kb(rss_end)[0], "peak": hwm_sum},
    # Every instance together, in cores, over the whole loadgen run (connect, warm-up, window).
    "server_cpu": round((int(cpu1) - int(cpu0)) / tck / max(wall, 1e-9), 3),
    "wall_secs": round(wall, 3),
    "server_alive": alive == "true",
    # How busy each core was in all (server or loadgen, kernel, and any other process).
    "core_busy": {"server_core": busy(sc0, sc1), "loadgen_core": busy(lc0, lc1)},
    "foreign_load_server_core": round(foreign, 3),
    "loadgen": lg,
}
if len(ports) > 1 or redis:
    rec["instances"] = [{"port": int(p), "pid": int(pid), "rss_peak_kb": h,
                         "window_cpu": watched[i] if i < len(watched) else None}
                        for i, (p, pid, h) in enumerate(zip(ports, pids.split(), hwm_each))]
    rec["pinning"] = {"instances": server_core, "loadgen": loadgen_core,
                      "redis": redis["cpu_core"] if redis else None}
if redis:
    redis["cpu"] = round(redis["ticks"] / tck / max(wall, 1e-9), 3)
    redis["window_cpu"] = watched[len(ports)] if len(watched) > len(ports) else None
    rec["redis"] = redis
print(json.dumps(rec))
EOF
    tail -n 1 "$RUNS"
}

# Is a paced run (fanout or open-loop relay) within the limits?
held() {
    "$PYTHON" - "$1" "$P99_MS" "$MAX_LOSS" <<'EOF'
import json, sys
rec = json.loads(sys.argv[1]); lg = rec["loadgen"]
lat = lg.get("latency_ms") or {}
ok = ("error" not in lg and lg.get("errors", 1) == 0 and lat.get("p99") is not None
      and lat["p99"] <= float(sys.argv[2]) and lg.get("loss", 1) <= float(sys.argv[3]))
sys.exit(0 if ok else 1)
EOF
}

describe() {
    "$PYTHON" - "$1" <<'EOF'
import json, sys
rec = json.loads(sys.argv[1]); lg = rec["loadgen"]; lat = lg.get("latency_ms") or {}
rate = lg.get("deliveries_per_sec", lg.get("relays_per_sec", 0))
cpu = f"server cpu {rec['server_cpu']}"
if rec.get("instances"):
    each = [i.get("window_cpu") for i in rec["instances"]]
    cpu += f" (window: {' + '.join(str(c) for c in each)})"
if rec.get("redis"):
    cpu += f", redis cpu {rec['redis'].get('window_cpu', rec['redis']['cpu'])}"
print(f"{rec['server']:>6} rate {lg.get('rate')}: {rate:,.0f}/s delivered, loss {lg.get('loss')}, "
      f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, {cpu}, "
      f"loadgen cpu {lg.get('loadgen_cpu')}, foreign load {rec.get('foreign_load_server_core')}")
EOF
}

# Other processes on the server's core (this machine may be shared) spoil a step: a step that
# missed the limits while more than $MAX_FOREIGN of that core went to other processes is run
# again, up to $RETRIES times; the record says how much foreign load each run saw.
# The step's only errors are connections that failed while the clients were being set up
# (e.g. a rare reset of a handshake on loopback): a setup failure, not a measured one.
setup_failed() {
    "$PYTHON" -c 'import json,sys; lg = json.loads(sys.argv[1])["loadgen"]; ce = lg.get("connect_errors", 0); sys.exit(0 if ce > 0 and lg.get("errors", 0) == ce and "error" not in lg else 1)' "$1"
}
disturbed() {
    "$PYTHON" -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]).get("foreign_load_server_core",0) > float(sys.argv[2]) else 1)' "$1" "$MAX_FOREIGN"
}

measure_step() {
    local name="$1" scenario="$2" rate="$3" rec try
    shift 3
    for ((try = 0; try <= RETRIES; try++)); do
        rec="$(run_one "$name" findmax "$scenario" "$@" --rate "$rate")"
        describe "$rec" >&2
        if held "$rec"; then break; fi
        if disturbed "$rec"; then
            log "other processes used the server's core during that step; running it again"
        elif setup_failed "$rec"; then
            log "some clients could not connect before the measurement (nothing was measured wrong); running it again"
        else
            break
        fi
        # Drop the disturbed record so that only the retry counts.
        sed -i '$d' "$RUNS"
    done
    echo "$rec"
}

# find_max SERVER SCENARIO [loadgen args without --rate]: geometric steps up from --start,
# then bisection between the last rate that held and the first that did not.
find_max() {
    local name="$1" scenario="$2"
    shift 2
    local rate="${START:-}" good=0 bad=0 rec i
    if [[ -z "$rate" ]]; then
        if [[ $scenario == fanout ]]; then rate=1000; else rate=2000; fi
    fi
    for ((i = 0; i < STEPS; i++)); do
        rec="$(measure_step "$name" "$scenario" "$rate" "$@")"
        if held "$rec"; then
            good="$rate"
        else
            bad="$rate"
            break
        fi
        rate="$("$PYTHON" -c "print(int(round($rate * $FACTOR)))")"
        if (( rate > MAX_RATE )); then break; fi
    done
    local r
    for ((r = 0; r < REFINE; r++)); do
        [[ $bad != 0 && $good != 0 ]] || break
        rate="$("$PYTHON" -c "print(int(round(($good * $bad) ** 0.5)))")"
        [[ $rate != "$good" && $rate != "$bad" ]] || break
        rec="$(measure_step "$name" "$scenario" "$rate" "$@")"
        if held "$rec"; then good="$rate"; else bad="$rate"; fi
    done
    log "$name $scenario: highest rate that held: $good (first that did not: $bad)"
}

machine_json() {
    "$PYTHON" - "$NOFILE" "$SERVER_CPU" "$LOADGEN_CPU" "$OURS_CMD" "$NODE_CMD" "${1:-}" <<'EOF'
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
model = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip(); break
except OSError:
    pass
mem_kb = 0
try:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem_kb = int(line.split()[1]); break
except OSError:
    pass
os_name = ""
try:
    for line in open("/etc/os-release"):
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip().strip('"')
except OSError:
    pass
print(json.dumps({
    "cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1048576, 1),
    "kernel": platform.release(), "os": os_name, "nofile": sys.argv[1],
    "server_cpu": sys.argv[2], "loadgen_cpu": sys.argv[3],
    "node": sh("node --version"), "rustc": sh("rustc --version"),
    "commit": sh("git rev-parse --short HEAD") + ("-dirty" if sh("git status --porcelain -- src Cargo.toml Cargo.lock") else ""),
    "ours": sys.argv[4], "baseline": sys.argv[5],
    **(json.loads(sys.argv[6]) if sys.argv[6] else {}),
}))
EOF
}

# What the cluster mode adds to the machine description: where Redis ran, which Redis.
cluster_machine() {
    "$PYTHON" -c 'import json, sys; print(json.dumps({"redis_cpu": sys.argv[1], "redis": sys.argv[2], "instance_cpus": sys.argv[3] or None}))' \
        "$REDIS_CPU" "$("$REDIS_SERVER" --version 2>/dev/null | head -n 1)" "${INSTANCE_CPUS:-}"
}

# report KIND: assembles $RUNS into results JSON, prints the table and the summary line,
# draws the chart.
report() {
    local kind="$1" file="$OUT/$1-$STAMP.json" extra=""
    [[ $kind == cluster* ]] && extra="$(cluster_machine)"
    "$PYTHON" "$BENCH_DIR/report.py" --kind "$kind" --runs "$RUNS" --machine "$(machine_json "$extra")" \
        --p99-ms "$P99_MS" --max-loss "$MAX_LOSS" --out "$file"
    if [[ $kind == suite ]]; then
        cp "$file" "$OUT/latest.json"
    fi
    if "$PYTHON" -c "import matplotlib" 2>/dev/null; then
        "$PYTHON" "$BENCH_DIR/plot.py" "$file" >&2 || log "chart failed"
        if [[ $kind == suite && -f "${file%.json}.png" ]]; then cp "${file%.json}.png" "$OUT/latest.png"; fi
    else
        log "no chart: python3 has no matplotlib (pip install matplotlib)"
    fi
    log "results: $file"
}

# ---- modes --------------------------------------------------------------------------------
if [[ $SMOKE -eq 1 ]]; then
    SERVERS_SMOKE="$SERVERS"
    if [[ " $SERVERS " == *" node "* ]] && ! { command -v node >/dev/null && [[ -d "$BENCH_DIR/baseline-node/node_modules" ]]; }; then
        log "smoke: node or bench/baseline-node/node_modules missing; running ours only"
        SERVERS_SMOKE="ours"
    fi
    for s in $SERVERS_SMOKE; do
        run_one "$s" smoke idle --clients 20 --room-size 5 --hold 0.2 >/dev/null
        run_one "$s" smoke idle --clients 20 --room-size 5 --hold 0.2 --transport polling >/dev/null
        run_one "$s" smoke fanout --rooms 2 --size 3 --rate 100 --duration 1 --warmup 0.3 --drain 1 >/dev/null
        run_one "$s" smoke relay --pairs 5 --rate 100 --duration 1 --warmup 0.3 --drain 1 >/dev/null
        run_one "$s" smoke relay --pairs 5 --closed-loop --duration 1 --warmup 0.3 >/dev/null
        run_one "$s" smoke churn --clients 4 --cycles 3 >/dev/null
        run_one "$s" smoke storm --clients 20 --storms 2 --settle 0.3 >/dev/null
    done
    # Two instances of ours on one Redis, each room spread over both (every message crosses).
    cluster_failed=0
    if [[ " $SERVERS_SMOKE " != *" ours "* ]]; then
        log "smoke: cluster run skipped (ours is not in --servers)"
    elif command -v "$REDIS_SERVER" >/dev/null; then
        run_one redis2 smoke fanout --rooms 2 --size 4 --rate 100 --duration 1 --warmup 0.3 --drain 1 >/dev/null
        # chat.lua alone, every variant: it fails when chat.lua no longer has what one removes.
        "$PYTHON" "$BENCH_DIR/chat_lua.py" --cpu "$REDIS_CPU" --calls 20 --repeat 1 \
            full no-bytes no-publish loop-only \
            >/dev/null || cluster_failed=2
    elif [[ -n "${CI:-}" ]]; then
        cluster_failed=1
    else
        log "smoke: cluster run skipped: $REDIS_SERVER is not installed (Debian: apt-get install redis-server)"
    fi
    smoke_status=0
    "$PYTHON" "$BENCH_DIR/report.py" --kind smoke --runs "$RUNS" --machine "$(machine_json)" \
        --p99-ms "$P99_MS" --max-loss "$MAX_LOSS" --check || smoke_status=$?
    if [[ $cluster_failed -eq 1 ]]; then
        echo "smoke: redis2 fanout: FAILED: $REDIS_SERVER is not installed, and CI is set (apt-get install redis-server)"
        smoke_status=1
    elif [[ $cluster_failed -eq 2 ]]; then
        echo "smoke: bench/chat_lua.py: FAILED (see above)"
        smoke_status=1
    fi
    exit "$smoke_status"
fi

MODE="$1"
shift
case "$MODE" in
    idle|fanout|relay|churn|storm)
        for s in $SERVERS; do
            rec="$(run_one "$s" measure "$MODE" "$@")"
        done
        report "$MODE"
        ;;
    find-max)
        [[ $# -ge 1 ]] || die "find-max needs a scenario: fanout or relay"
        scenario="$1"
        shift
        [[ $scenario == fanout || $scenario == relay ]] || die "find-max works on fanout and relay"
        for s in $SERVERS; do
            find_max "$s" "$scenario" "$@"
        done
        report "findmax-$scenario"
        ;;
    suite)
        # The suite table of docs/PERFORMANCE.md: every target of issue 5, ours against Node, same parameters.
        CLIENTS="${IDLE_CLIENTS:-19000}"
        for s in $SERVERS; do
            log "== $s: idle $CLIENTS clients"
            run_one "$s" measure idle --clients "$CLIENTS" --room-size 5 --hold 6 --concurrency 256 >/dev/null
        done
        for s in $SERVERS; do
            log "== $s: fanout find-max (100 rooms x 5)"
            find_max "$s" fanout --rooms 100 --size 5 --duration 5
        done
        for s in $SERVERS; do
            log "== $s: relay find-max (500 pairs)"
            find_max "$s" relay --pairs 500 --duration 5
        done
        for s in $SERVERS; do
            log "== $s: relay closed loop (500 pairs)"
            run_one "$s" measure relay --pairs 500 --closed-loop --duration 5 >/dev/null
            log "== $s: relay at 10k/s (500 pairs)"
            run_one "$s" fixed10k relay --pairs 500 --rate 10000 --duration 10 >/dev/null
        done
        for s in $SERVERS; do
            log "== $s: churn"
            run_one "$s" measure churn --clients 50 --cycles 100 --room-size 5 >/dev/null
        done
        report suite
        ;;
    cluster)
        command -v "$REDIS_SERVER" >/dev/null || die "the cluster mode needs $REDIS_SERVER (Debian: apt-get install redis-server)"
        find=0
        if [[ ${1:-} == find-max ]]; then find=1; shift; fi
        args=()
        rates=""
        rounds=1
        while [[ $# -gt 0 ]]; do
            case "$1" in
                --rate) rates="${2:?--rate needs a value}"; shift 2 ;;
                --rate=*) rates="${1#--rate=}"; shift ;;
                --rounds) rounds="${2:?--rounds needs a value}"; shift 2 ;;
                --rounds=*) rounds="${1#--rounds=}"; shift ;;
                *) args+=("$1"); shift ;;
            esac
        done
        has_arg --rooms "${args[@]}" || args+=(--rooms 100)
        has_arg --size "${args[@]}" || args+=(--size 5)
        has_arg --duration "${args[@]}" || args+=(--duration 5)
        for s in $SETUPS; do server_cmd "$s" >/dev/null; done
        log "cluster: instances on CPU ${INSTANCE_CPUS:-$SERVER_CPU}, Redis on CPU $REDIS_CPU, loadgen on CPU $LOADGEN_CPU; setups: $SETUPS"
        [[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive whole number, not $rounds"
        if [[ $find -eq 1 ]]; then
            [[ -z $rates ]] || die "cluster find-max searches the rate itself (--start R sets where it begins)"
            [[ $rounds -eq 1 ]] || die "--rounds is for fixed rates (find-max searches once per setup)"
            for s in $SETUPS; do
                log "== $s: fanout find-max (${args[*]})"
                find_max "$s" fanout "${args[@]}"
            done
            report cluster-findmax
        else
            IFS=, read -r -a rate_list <<<"${rates:-$CLUSTER_RATES}"
            for rate in "${rate_list[@]}"; do
                # Rounds alternate the setups, so a slow minute of the machine falls on all
                # of them rather than on one (the report pairs each round's runs).
                for ((round = 1; round <= rounds; round++)); do
                    for s in $SETUPS; do
                        log "== $s: fanout at $rate msg/s, round $round of $rounds (${args[*]})"
                        rec="$(run_one "$s" measure fanout "${args[@]}" --rate "$rate")"
                        describe "$rec" >&2
                    done
                done
            done
            report cluster
        fi
        ;;
    *)
        die "unknown mode $MODE (idle, fanout, relay, churn, storm, find-max, suite, cluster, --smoke)"
        ;;
esac
