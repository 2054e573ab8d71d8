#!/usr/bin/env python3
"""What `chat.lua` costs Redis per message, and where in the script that cost is.

    python3 bench/chat_lua.py [--calls N] [--batch M] [--repeat K] [--cpu C] [VARIANT ...]

Starts a private redis-server (free loopback port, no persistence, pinned to CPU C, default
1), seats 100 rooms x 5 senders, fills every room's history past its limit, then sends N
calls of M messages each (the bench's fan-out messages, a room named as the frontends do)
and reads `INFO commandstats`: microseconds per `EVALSHA` and per message, and the commands
the script made. Each VARIANT is the script with one part taken out; the difference to
`full` is what that part costs. Variants are for attribution only: they do not keep the
script's guarantees, and each fails loudly if `chat.lua` no longer contains what it removes.
Needs redis-server and redis-cli; nothing else.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "src", "registry", "redis", "scripts")
PREFIX = "{bench}"
ROOMS, SENDERS = 100, 5
HISTORY_LIMIT = 200  # messages kept per room (the server's default CHAT_HISTORY_LIMIT)

# name -> (what it takes out of chat.lua, what it puts instead)
VARIANTS = {
    "full": [],
    # Byte accounting: the popped messages read back into Lua, HINCRBY, the budget checks.
    "no-bytes": [(
        """      local grown = #message
      if length > limit then
        for _, old in ipairs(redis.call('LPOP', key, length - limit)) do grown = grown - #old end
      end
      local bytes = redis.call('HINCRBY', room_key(id), 'chatbytes', grown)""",
        """      local grown = #message
      if length > limit then redis.call('LTRIM', key, -limit, -1) end
      local bytes = 0""")],
    # The batch's JSON joined and published.
    "no-publish": [("redis.call('PUBLISH', EVENTS, table.concat(published))", "")],
    # Nothing per message but reading the arguments and answering.
    "loop-only": [
        ("""  if named == '' then
    id = redis.call('HGET', MEMBER, sid)
  else
    id = string.sub(named, 2)
  end""", "  id = nil"),
        ("  if not sender then\n    -- Refused",
         "  if true then\n    replies[#replies + 1] = 'said'\n    replies[#replies + 1] = named\n"
         "    replies[#replies + 1] = sid\n  elseif not sender then\n    -- Refused"),
    ],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out += [f"${len(b)}\r\n".encode(), b, b"\r\n"]
    return b"".join(out)


def variant(name):
    body = open(os.path.join(SCRIPTS, "chat.lua")).read()
    for old, new in VARIANTS[name]:
        if body.count(old) != 1:
            sys.exit(f"variant {name}: chat.lua no longer has {old[:60]!r}")
        body = body.replace(old, new)
    return open(os.path.join(SCRIPTS, "common.lua")).read() + "\n" + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", default=os.environ.get("REDIS_CPU", "1"))
    ap.add_argument("variants", nargs="*", default=["full"])
    args = ap.parse_args()
    for v in args.variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v}; known: {', '.join(VARIANTS)}")
    port = str(free_port())
    work = tempfile.mkdtemp(prefix="chat-lua-")
    server = subprocess.Popen(
        ["taskset", "-c", args.cpu, os.environ.get("REDIS_SERVER", "redis-server"), "--port", port,
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL)

    def cli(*a):
        return subprocess.run(["redis-cli", "-p", port, *a], capture_output=True, text=True).stdout.strip()

    def pipe(path):
        with open(path, "rb") as f:
            if subprocess.run(["redis-cli", "-p", port, "--pipe"], stdin=f, stdout=subprocess.DEVNULL).returncode:
                sys.exit(f"redis-cli --pipe {os.path.basename(path)}: Redis answered errors (above)")

    try:
        for _ in range(100):
            if cli("ping") == "PONG":
                break
            time.sleep(0.05)
        full = args.calls * args.batch >= HISTORY_LIMIT * ROOMS
        print(f"{args.calls} calls of {args.batch} messages, history {'full' if full else 'not full'}, "
              f"Redis on CPU {args.cpu}; "
              f"{next((l for l in cli('info', 'server').splitlines() if l.startswith('redis_version')), '')}")
        setup, calls = os.path.join(work, "setup"), os.path.join(work, "calls")
        with open(setup, "wb") as f:
            for r in range(ROOMS):
                for s in range(SENDERS):
                    f.write(resp(["HSET", f"{PREFIX}:senders:fan{r}", f"sid{r}x{s:02}aaaaaaaaaaaaa",
                                  f'"userName":"user {r}-{s}","userAvatar":null']))
        for name in args.variants:
            sha = cli("script", "load", variant(name))
            with open(calls, "wb") as f:
                n = 0
                for _ in range(args.calls):
                    call = ["EVALSHA", sha, "1", f"{PREFIX}:rooms", PREFIX, "instance-a", str(HISTORY_LIMIT),
                            "131072", "67108864", str(args.batch)]
                    for _ in range(args.batch):
                        sid = f"sid{n % ROOMS}x{(n // ROOMS) % SENDERS:02}aaaaaaaaaaaaa"
                        fields = json.dumps({"id": str(uuid.uuid4()), "senderId": sid,
                                             "message": f"bench {'x' * 16} ~T{n:012d} end",
                                             "timestamp": 1765000000000 + n}, separators=(",", ":"))
                        call += [sid, f"=fan{n % ROOMS}", fields[1:-1], str(n)]
                        n += 1
                    f.write(resp(call))
            results = []
            for _ in range(args.repeat):
                cli("flushall")
                pipe(setup)
                # Once to fill the histories past their limit, once measured.
                pipe(calls)
                cli("config", "resetstat")
                pipe(calls)
                stats = {}
                for line in cli("info", "commandstats").splitlines():
                    if line.startswith("cmdstat_") and "calls=" in line:
                        cmd, rest = line[len("cmdstat_"):].split(":", 1)
                        kv = dict(p.split("=") for p in rest.split(","))
                        stats[cmd] = float(kv["usec_per_call"])
                        if int(kv.get("failed_calls", 0)) > 0:
                            sys.exit(f"variant {name}: {kv['failed_calls']} {cmd} calls failed")
                if "evalsha" not in stats:
                    sys.exit(f"variant {name}: no EVALSHA ran (the script failed?)")
                results.append(stats)
            per_msg = sorted(r["evalsha"] / args.batch for r in results)
            inner = {c: round(sum(r.get(c, 0) for r in results) / len(results), 2)
                     for c in sorted({c for r in results for c in r}) if c not in ("evalsha", "config|resetstat", "flushall", "echo")}
            print(f"{name:10} EVALSHA {per_msg[len(per_msg) // 2] * args.batch:7.1f} us a call, "
                  f"{per_msg[len(per_msg) // 2]:5.2f} us a message (median of {args.repeat}; "
                  f"{min(per_msg):.2f}-{max(per_msg):.2f}); commands, us each: {inner}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
