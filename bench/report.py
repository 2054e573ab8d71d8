#!/usr/bin/env python3
"""Turns compare.sh's run records (JSON lines) into the results JSON, the table and the
one-line summary of ratios. Standard library only.

    report.py --kind suite|findmax-fanout|fanout|... --runs runs.jsonl --machine '{...}' --out file.json
    report.py --kind smoke --runs runs.jsonl --check      (exit 1 unless every tool worked)
    report.py --kind cluster|cluster-findmax ...           (the cluster mode: setups, not servers)
"""

import argparse
import datetime
import json
import statistics
import sys

# Issue 5's targets.
TARGET_KB_PER_CLIENT = 7.5
TARGET_IDLE_CLIENTS = 19000


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def lat(rec, key="latency_ms"):
    return (rec["loadgen"].get(key) or {}) if "loadgen" in rec else {}


def held(rec, p99_ms, max_loss):
    lg = rec["loadgen"]
    p99 = lat(rec).get("p99")
    return ("error" not in lg and lg.get("errors", 1) == 0 and p99 is not None
            and p99 <= p99_ms and lg.get("loss", 1) <= max_loss)


def delivered_rate(rec):
    lg = rec["loadgen"]
    return lg.get("deliveries_per_sec", lg.get("relays_per_sec", 0.0))


def offered_rate(rec):
    lg = rec["loadgen"]
    if lg.get("scenario") == "fanout":
        return lg.get("offered_deliveries_per_sec", 0.0)
    return lg.get("rate", 0.0)


def kb_per_client(rec):
    lg = rec["loadgen"]
    joined = lg.get("joined", 0)
    if not joined or not rec["rss_kb"]["loaded"]:
        return None
    return (rec["rss_kb"]["loaded"] - rec["rss_kb"]["start"]) / joined


def window_cpu(rec):
    """(server, redis) CPU in cores over the measured window, from loadgen's `watched_cpu`
    (every instance summed, then Redis); the whole run's figures where it has none."""
    lg = rec["loadgen"]
    n = len(lg.get("targets") or [None])
    w = lg.get("watched_cpu") or []
    mine = w[:n]
    server = (sum(mine) if len(mine) == n and all(c is not None for c in mine)
              else rec.get("server_cpu"))
    redis = w[n] if len(w) > n and w[n] is not None else (rec.get("redis") or {}).get("cpu")
    return server, redis


def per_delivery_us(cpu, rate):
    """CPU microseconds per delivery (or relay) at `rate` per second."""
    if cpu is None or not rate:
        return None
    return cpu * 1e6 / rate


def total_cpu(server, redis):
    """Every instance's CPU plus Redis's (none in memory mode), in cores."""
    if server is None:
        return None
    return server + (redis or 0.0)


def per_cpu_second(rate, cpu):
    """Deliveries per CPU-second: `rate` per second done with `cpu` cores in all."""
    if not cpu or rate is None:
        return None
    return rate / cpu


def findmax_summary(runs, server, scenario, p99_ms, max_loss):
    steps = [r for r in runs if r["server"] == server and r["phase"] == "findmax"
             and r["scenario"] == scenario]
    steps.sort(key=offered_rate)
    good = [r for r in steps if held(r, p99_ms, max_loss)]
    best = max(good, key=delivered_rate) if good else None
    return {
        "max_per_sec": delivered_rate(best) if best else 0.0,
        "max_rate": best["loadgen"].get("rate") if best else 0,
        "p99_at_max_ms": lat(best).get("p99") if best else None,
        "server_cpu_at_max": best["server_cpu"] if best else None,
        "loadgen_cpu_at_max": best["loadgen"].get("loadgen_cpu") if best else None,
        "window_server_cpu_at_max": window_cpu(best)[0] if best else None,
        "redis_cpu_at_max": window_cpu(best)[1] if best else None,
        "steps": [{
            "rate": r["loadgen"].get("rate"),
            "offered_per_sec": offered_rate(r),
            "delivered_per_sec": delivered_rate(r),
            "loss": r["loadgen"].get("loss"),
            "p50_ms": lat(r).get("p50"),
            "p99_ms": lat(r).get("p99"),
            "max_ms": lat(r).get("max"),
            "server_cpu": r["server_cpu"],
            "window_server_cpu": window_cpu(r)[0],
            "redis_cpu": window_cpu(r)[1],
            "loadgen_cpu": r["loadgen"].get("loadgen_cpu"),
            "rss_peak_kb": r["rss_kb"]["peak"],
            "held": held(r, p99_ms, max_loss),
        } for r in steps],
    }


def one(runs, server, phase, scenario, mode=None):
    for r in runs:
        if (r["server"] == server and r["phase"] == phase and r["scenario"] == scenario
                and (mode is None or r["loadgen"].get("mode") == mode)):
            return r
    return None


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def suite(runs, servers, p99_ms, max_loss):
    """The measures of issue 5, each with ours, node, the ratio and the target."""
    rows = []
    ours, node = "ours", "node"

    def get(server, fn):
        return fn(server) if server in servers else None

    # memory
    def idle_rec(s):
        return one(runs, s, "measure", "idle")
    kb = {s: kb_per_client(idle_rec(s)) if idle_rec(s) else None for s in servers}
    r = ratio(kb.get(node), kb.get(ours))
    rows.append({
        "measure": f"RSS per idle client, KB ({idle_rec(ours)['loadgen']['clients'] if idle_rec(ours) else '?'} clients)",
        "ours": kb.get(ours), "node": kb.get(node), "ratio": r, "ratio_label": "node/ours",
        "target": f"<= {TARGET_KB_PER_CLIENT} KB", "met": kb.get(ours) is not None and kb[ours] <= TARGET_KB_PER_CLIENT,
    })
    held_clients = {s: (idle_rec(s)["loadgen"].get("held") if idle_rec(s) else None) for s in servers}
    errors = {s: (idle_rec(s)["loadgen"].get("errors") if idle_rec(s) else None) for s in servers}
    rows.append({
        "measure": "idle clients held (errors)",
        "ours": f"{held_clients.get(ours)} ({errors.get(ours)})" if ours in servers else None,
        "node": f"{held_clients.get(node)} ({errors.get(node)})" if node in servers else None,
        "ratio": None, "ratio_label": "",
        "target": f"{TARGET_IDLE_CLIENTS}, no error",
        "met": held_clients.get(ours) is not None and held_clients[ours] >= TARGET_IDLE_CLIENTS and errors.get(ours) == 0,
    })
    fm = {s: findmax_summary(runs, s, "fanout", p99_ms, max_loss) for s in servers}
    v = {s: fm[s]["max_per_sec"] for s in servers}
    r = ratio(v.get(ours), v.get(node))
    rows.append({"measure": "fan-out: max chat deliveries/s (100 rooms x 5, p99 <= 50 ms)",
                 "ours": v.get(ours), "node": v.get(node), "ratio": r, "ratio_label": "ours/node",
                 "target": ">= 5x", "met": r is not None and r >= 5})
    rm = {s: findmax_summary(runs, s, "relay", p99_ms, max_loss) for s in servers}
    v = {s: rm[s]["max_per_sec"] for s in servers}
    r = ratio(v.get(ours), v.get(node))
    rows.append({"measure": "relay: max offers relayed/s (500 pairs, p99 <= 50 ms)",
                 "ours": v.get(ours), "node": v.get(node), "ratio": r, "ratio_label": "ours/node",
                 "target": ">= 3x", "met": r is not None and r >= 3})
    cl = {s: one(runs, s, "measure", "relay", "closed-loop") for s in servers}
    v = {s: (cl[s]["loadgen"].get("round_trips_per_sec") if cl[s] else None) for s in servers}
    r = ratio(v.get(ours), v.get(node))
    rows.append({"measure": "relay: closed-loop round trips/s (500 pairs)",
                 "ours": v.get(ours), "node": v.get(node), "ratio": r, "ratio_label": "ours/node",
                 "target": ">= 3x", "met": r is not None and r >= 3})
    fx = {s: one(runs, s, "fixed10k", "relay") for s in servers}
    v = {s: (lat(fx[s]).get("p99") if fx[s] else None) for s in servers}
    rows.append({"measure": "relay p99 at 10k offers/s, ms",
                 "ours": v.get(ours), "node": v.get(node), "ratio": None, "ratio_label": "",
                 "target": "<= 5 ms", "met": v.get(ours) is not None and v[ours] <= 5})
    ch = {s: one(runs, s, "measure", "churn") for s in servers}
    v = {s: (ch[s]["loadgen"].get("cycles_per_sec") if ch[s] else None) for s in servers}
    r = ratio(v.get(ours), v.get(node))
    rows.append({"measure": "churn: connect/join/chat/leave cycles/s",
                 "ours": v.get(ours), "node": v.get(node), "ratio": r, "ratio_label": "ours/node",
                 "target": ">= 10x", "met": r is not None and r >= 10})
    return rows, {"fanout": fm, "relay": rm}


def print_table(rows):
    head = ["measure", "ours", "node", "ratio", "target", "met"]
    lines = []
    for row in rows:
        ratio_s = f"{row['ratio']:.2f}x {row['ratio_label']}" if row.get("ratio") else "–"
        met = row.get("met")
        lines.append([row["measure"], fmt(row.get("ours"), 2 if isinstance(row.get("ours"), float) and row["ours"] < 100 else 1),
                      fmt(row.get("node"), 2 if isinstance(row.get("node"), float) and row["node"] < 100 else 1),
                      ratio_s, row.get("target", ""), "" if met is None else ("yes" if met else "NO")])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |")


def summary_line(rows):
    parts = []
    short = {
        "RSS per idle client": "memory",
        "fan-out": "fan-out",
        "relay: max": "relay",
        "relay: closed-loop": "closed-loop",
        "churn": "churn",
    }
    for row in rows:
        if not row.get("ratio"):
            continue
        name = next((n for prefix, n in short.items() if row["measure"].startswith(prefix)), None)
        if name:
            parts.append(f"{name} {row['ratio']:.2f}x")
        else:
            parts.append(f"{row['measure']} {row['ratio']:.2f}x {row['ratio_label']}")
    return "summary (ours vs node): " + (", ".join(parts) if parts else "no ratio (one server only)")


def scenario_rows(runs):
    """Single-scenario mode: the headline numbers of each server, and ours/node."""
    metrics = {
        "idle": [("kb_per_client", lambda r: kb_per_client(r), "RSS per client, KB", "node/ours"),
                 ("held", lambda r: r["loadgen"].get("held"), "clients held", None)],
        "fanout": [("deliveries_per_sec", lambda r: r["loadgen"].get("deliveries_per_sec"), "deliveries/s", "ours/node"),
                   ("p99", lambda r: lat(r).get("p99"), "p99 ms", "node/ours")],
        "relay": [("relays_per_sec", lambda r: r["loadgen"].get("relays_per_sec"), "relays/s", "ours/node"),
                  ("p99", lambda r: lat(r).get("p99") or lat(r, "rtt_ms").get("p99"), "p99 ms", "node/ours")],
        "churn": [("cycles_per_sec", lambda r: r["loadgen"].get("cycles_per_sec"), "cycles/s", "ours/node"),
                  ("p99", lambda r: lat(r, "cycle_ms").get("p99"), "cycle p99 ms", "node/ours")],
        "storm": [("max_above", lambda r: r["loadgen"].get("max_after_above_start_mb"),
                   "RSS after each storm above the start, max MB", "node/ours"),
                  ("above", lambda r: " ".join(str(v) for v in r["loadgen"].get("after_above_start_mb", [])),
                   "RSS after storm 1..K above the start, MB", None),
                  ("joined_peak", lambda r: round(max(r["loadgen"].get("rss_joined_kb") or [0]) / 1024, 1),
                   "RSS with every client joined, peak MB", None)],
    }
    rows = []
    if not runs:
        return rows
    scenario = runs[0]["scenario"]
    by = {r["server"]: r for r in runs if r["phase"] == "measure"}
    for _, fn, label, direction in metrics.get(scenario, []):
        o = fn(by["ours"]) if "ours" in by else None
        n = fn(by["node"]) if "node" in by else None
        if direction == "node/ours":
            r = ratio(n, o)
        elif direction == "ours/node":
            r = ratio(o, n)
        else:
            r = None
        # idle over long-polling (`--transport polling`) is told apart from WebSocket clients.
        transport = next((b["loadgen"].get("transport") for b in by.values()), None)
        name = f"{scenario} ({transport})" if scenario == "idle" and transport else scenario
        rows.append({"measure": f"{name}: {label}", "ours": o, "node": n, "ratio": r,
                     "ratio_label": direction or "", "target": "", "met": None})
    for s, r in by.items():
        rows.append({"measure": f"{s}: server cpu, rss peak MB", "ours": None, "node": None,
                     "ratio": None, "ratio_label": "",
                     "target": f"{r['server_cpu']:.2f}, {r['rss_kb']['peak'] / 1024:.1f}", "met": None})
    return rows


def findmax_rows(runs, scenario, p99_ms, max_loss):
    servers = sorted({r["server"] for r in runs}, key=lambda s: s != "ours")
    fm = {s: findmax_summary(runs, s, scenario, p99_ms, max_loss) for s in servers}
    for s in servers:
        print(f"{s}: " + "; ".join(
            f"{st['offered_per_sec']:,.0f}/s offered -> p99 {st['p99_ms']} ms, loss {st['loss']}"
            + ("" if st["held"] else " (over)") for st in fm[s]["steps"]), file=sys.stderr)
    o = fm.get("ours", {}).get("max_per_sec")
    n = fm.get("node", {}).get("max_per_sec")
    label = "deliveries/s" if scenario == "fanout" else "relays/s"
    return [{"measure": f"{scenario}: max {label} (p99 <= {p99_ms} ms, loss <= {max_loss})",
             "ours": o, "node": n, "ratio": ratio(o, n), "ratio_label": "ours/node",
             "target": ">= 5x" if scenario == "fanout" else ">= 3x", "met": None}], fm


# ---- cluster mode ----------------------------------------------------------------------

def setup_label(setup):
    if setup == "mem1":
        return "1 instance, memory mode"
    if setup.startswith("redis") and setup[5:].isdigit():
        n = int(setup[5:])
        return f"{n} instance{'s' if n > 1 else ''} + Redis"
    return setup


def print_grid(head, lines):
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |")


def num(v, digits=2):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def pinning_line(m):
    spread = m.get("instance_cpus")
    where = (f"instance k on the k-th CPU of {spread!r}" if spread else
             f"every server instance on CPU {m.get('server_cpu')} (two instances share that one core)")
    return (f"pinning: {where}, Redis on CPU {m.get('redis_cpu')}, loadgen on CPU {m.get('loadgen_cpu')}; "
            f"{m.get('redis', 'redis')}")


def cluster_fixed(runs, p99_ms, max_loss):
    """Fixed-rate cluster runs: one row per (rate, setup), and the summary."""
    recs = [r for r in runs if r["phase"] == "measure" and r["scenario"] == "fanout"]
    rates = sorted({r["loadgen"].get("rate") for r in recs})
    rows = []
    for rate in rates:
        seen = {}
        for r in (r for r in recs if r["loadgen"].get("rate") == rate):
            # Runs are recorded in the order they ran: a setup's k-th run at a rate is round k
            # (`--rounds` alternates the setups).
            seen[r["server"]] = seen.get(r["server"], 0) + 1
            lg = r["loadgen"]
            server, redis = window_cpu(r)
            delivered = lg.get("deliveries_per_sec")
            rows.append({
                "setup": r["server"], "label": setup_label(r["server"]), "rate": rate,
                "round": seen[r["server"]],
                "rooms": lg.get("rooms"), "size": lg.get("size"),
                "offered_per_sec": lg.get("offered_deliveries_per_sec"),
                "delivered_per_sec": delivered, "loss": lg.get("loss"),
                "p50_ms": lat(r).get("p50"), "p99_ms": lat(r).get("p99"), "max_ms": lat(r).get("max"),
                "server_cpu": server, "redis_cpu": redis, "loadgen_cpu": lg.get("loadgen_cpu"),
                "core_busy": r.get("core_busy"),
                "server_us_per_delivery": per_delivery_us(server, delivered),
                "redis_us_per_delivery": per_delivery_us(redis, delivered),
                "total_cpu": total_cpu(server, redis),
                "deliveries_per_cpu_sec": per_cpu_second(delivered, total_cpu(server, redis)),
                "held": held(r, p99_ms, max_loss),
                "errors": lg.get("errors"),
            })
    # Each setup's deliveries per CPU-second (instances + Redis) against memory mode's at
    # the same offered rate: the figure issue 19 sets at >= 0.8x.
    # In a round, against that round's memory mode run.
    for row in rows:
        mems = [m for m in rows if m["setup"] == "mem1" and m["rate"] == row["rate"]]
        mem = next((m for m in mems if m["round"] == row["round"]), mems[0] if mems else None)
        row["per_cpu_vs_memory"] = ratio(row["deliveries_per_cpu_sec"],
                                         mem["deliveries_per_cpu_sec"] if mem else None)
    return rows


def print_cluster_fixed(rows):
    rounds = max((row["round"] for row in rows), default=1)
    head = ["msg/s", "setup", "delivered/s", "loss", "p50 ms", "p99 ms", "server cpu",
            "redis cpu", "loadgen cpu", "load core busy", "server µs/deliv", "redis µs/deliv",
            "deliv per cpu-s", "per cpu-s vs memory"]
    print_grid(head, [[
        f"{row['rate']:,.0f}", row["label"] + (f" (round {row['round']})" if rounds > 1 else ""),
        num(row["delivered_per_sec"]),
        f"{row['loss']:.4f}" if row["loss"] is not None else "–",
        num(row["p50_ms"]), num(row["p99_ms"]), num(row["server_cpu"]), num(row["redis_cpu"]),
        num(row["loadgen_cpu"]), num((row["core_busy"] or {}).get("loadgen_core")),
        num(row["server_us_per_delivery"]), num(row["redis_us_per_delivery"]),
        num(row["deliveries_per_cpu_sec"]),
        f"{row['per_cpu_vs_memory']:.2f}x" if row["per_cpu_vs_memory"] else "–",
    ] for row in rows])


def cluster_fixed_summary(rows):
    parts = []
    for rate in sorted({row["rate"] for row in rows}):
        at = {row["setup"]: row for row in rows if row["rate"] == rate}
        one, two, mem = at.get("redis1"), at.get("redis2"), at.get("mem1")
        bits = []
        if one and two:
            bits.append(
                f"2 instances delivered {num(ratio(two['delivered_per_sec'], one['delivered_per_sec']))}x "
                f"1 instance's rate (p99 {num(two['p99_ms'])} vs {num(one['p99_ms'])} ms, server CPU per "
                f"delivery {num(ratio(two['server_us_per_delivery'], one['server_us_per_delivery']))}x)")
        if one and mem:
            bits.append(
                f"cluster vs memory mode (1 instance): {num(ratio(one['delivered_per_sec'], mem['delivered_per_sec']))}x "
                f"delivered, server CPU per delivery {num(ratio(one['server_us_per_delivery'], mem['server_us_per_delivery']))}x "
                f"(+ Redis {num(one['redis_cpu'])} core)")
        if two and mem:
            bits.append(
                f"deliveries per CPU-second (instances + Redis): 2 instances {num(two['deliveries_per_cpu_sec'])}, "
                f"memory mode {num(mem['deliveries_per_cpu_sec'])} = {num(two['per_cpu_vs_memory'])}x")
        per_round = [row["per_cpu_vs_memory"] for row in rows
                     if row["rate"] == rate and row["setup"] == "redis2" and row["per_cpu_vs_memory"]]
        if len(per_round) > 1:
            bits.append(
                f"over {len(per_round)} alternating rounds, 2 instances per CPU-second vs memory mode: "
                f"median {num(statistics.median(per_round))}x "
                f"(rounds: {', '.join(num(v) + 'x' for v in per_round)})")
        if bits:
            parts.append(f"at {rate:,.0f} msg/s: " + "; ".join(bits))
    return "summary (cluster fan-out): " + (" | ".join(parts) if parts else "no comparison (setups missing)")


def cluster_findmax(runs, p99_ms, max_loss):
    setups = list(dict.fromkeys(r["server"] for r in runs if r["phase"] == "findmax"))
    fm = {s: findmax_summary(runs, s, "fanout", p99_ms, max_loss) for s in setups}
    for s in setups:
        print(f"{s}: " + "; ".join(
            f"{st['offered_per_sec']:,.0f}/s offered -> p99 {st['p99_ms']} ms, loss {st['loss']}"
            + ("" if st["held"] else " (over)") for st in fm[s]["steps"]), file=sys.stderr)
    one = fm.get("redis1", {}).get("max_per_sec")
    mem = fm.get("mem1", {}).get("max_per_sec")
    rows = []
    for s in setups:
        f = fm[s]
        rows.append({
            "setup": s, "label": setup_label(s), "max_per_sec": f["max_per_sec"],
            "max_rate": f["max_rate"], "p99_at_max_ms": f["p99_at_max_ms"],
            "server_cpu_at_max": f["window_server_cpu_at_max"], "redis_cpu_at_max": f["redis_cpu_at_max"],
            "loadgen_cpu_at_max": f["loadgen_cpu_at_max"],
            "server_us_per_delivery": per_delivery_us(f["window_server_cpu_at_max"], f["max_per_sec"]),
            "total_cpu_at_max": total_cpu(f["window_server_cpu_at_max"], f["redis_cpu_at_max"]),
            "deliveries_per_cpu_sec": per_cpu_second(
                f["max_per_sec"], total_cpu(f["window_server_cpu_at_max"], f["redis_cpu_at_max"])),
            "vs_1_instance": ratio(f["max_per_sec"], one), "vs_memory": ratio(f["max_per_sec"], mem),
            # Every step held: the search stopped (--steps, --max-rate) below this setup's limit.
            "lower_bound": bool(f["steps"]) and all(st["held"] for st in f["steps"]),
        })
    mem_per_cpu = next((row["deliveries_per_cpu_sec"] for row in rows if row["setup"] == "mem1"), None)
    for row in rows:
        row["per_cpu_vs_memory"] = ratio(row["deliveries_per_cpu_sec"], mem_per_cpu)
    return rows, fm


def print_cluster_findmax(rows, p99_ms):
    head = ["setup", f"max deliveries/s (p99 <= {p99_ms:g} ms)", "at msg/s", "p99 ms", "server cpu",
            "redis cpu", "loadgen cpu", "server µs/deliv", "vs 1 instance + Redis", "vs memory mode",
            "deliv per cpu-s", "per cpu-s vs memory"]
    print_grid(head, [[
        row["label"], (">= " if row["lower_bound"] else "") + num(row["max_per_sec"]),
        num(row["max_rate"]), num(row["p99_at_max_ms"]),
        num(row["server_cpu_at_max"]), num(row["redis_cpu_at_max"]), num(row["loadgen_cpu_at_max"]),
        num(row["server_us_per_delivery"]),
        f"{row['vs_1_instance']:.2f}x" if row["vs_1_instance"] else "–",
        f"{row['vs_memory']:.2f}x" if row["vs_memory"] else "–",
        num(row["deliveries_per_cpu_sec"]),
        f"{row['per_cpu_vs_memory']:.2f}x" if row["per_cpu_vs_memory"] else "–",
    ] for row in rows])


def cluster_findmax_summary(rows):
    by = {row["setup"]: row for row in rows}
    one, two, mem = by.get("redis1"), by.get("redis2"), by.get("mem1")

    def rate(row):
        return (">= " if row["lower_bound"] else "") + num(row["max_per_sec"])

    def times(a, b):
        # A lower bound on the denominator's side makes the ratio an upper bound, and so on.
        r = num(ratio(a["max_per_sec"], b["max_per_sec"]))
        if a["lower_bound"] and not b["lower_bound"]:
            return f">= {r}"
        if b["lower_bound"] and not a["lower_bound"]:
            return f"<= {r}"
        return r

    bits = []
    if one and two:
        bits.append(f"2 instances {rate(two)}/s = {times(two, one)}x 1 instance ({rate(one)}/s)")
    if one and mem:
        bits.append(f"cluster mode (1 instance) = {times(one, mem)}x memory mode ({rate(mem)}/s)")
    if two and mem:
        bits.append(f"deliveries per CPU-second at each maximum (instances + Redis): 2 instances "
                    f"{num(two['deliveries_per_cpu_sec'])}, memory mode {num(mem['deliveries_per_cpu_sec'])} "
                    f"= {num(two['per_cpu_vs_memory'])}x")
    if any(row["lower_bound"] for row in rows):
        bits.append(">= : every step held, the search stopped first (raise --steps or --max-rate)")
    return "summary (cluster fan-out, max deliveries/s): " + ("; ".join(bits) if bits else "no comparison (setups missing)")


def check_smoke(runs):
    """Prints one line per run; returns (passed, failed)."""
    passed = failed = 0
    for r in runs:
        lg = r["loadgen"]
        what = f"{r['server']} {r['scenario']} {lg.get('mode', '')}".strip()
        if lg.get("transport") == "polling":
            what += " (polling)"
        if len(lg.get("targets") or []) > 1:
            what += f" ({len(lg['targets'])} instances, Redis)"
        problems = []
        if "error" in lg:
            problems.append("loadgen failed")
        else:
            if lg.get("errors", 0) or lg.get("connect_errors", 0):
                problems.append(f"{lg.get('errors')} errors {lg.get('first_errors')}")
            # Lambdas: only the run's own scenario is read (idle's `joined` is a count, the
            # storm's a list per storm).
            got = {
                "idle": lambda: lg.get("held"),
                "fanout": lambda: lg.get("deliveries"),
                "relay": lambda: lg.get("relayed", lg.get("round_trips")),
                "churn": lambda: lg.get("completed"),
                "storm": lambda: sum(lg.get("joined") or []),
            }.get(r["scenario"], lambda: None)()
            if not got:
                problems.append("nothing measured")
            targets = lg.get("targets") or []
            if len(targets) > 1:
                # A cluster run: every instance had clients, and messages crossed instances
                # (a room's deliveries to the other instance missing would be ~half lost).
                per = lg.get("connections_per_target") or []
                if len(per) != len(targets) or not all(per):
                    problems.append(f"clients per instance {per}")
                if lg.get("loss", 1) > 0.1:
                    problems.append(f"loss {lg.get('loss')} (deliveries across instances missing?)")
        if not r["server_alive"]:
            problems.append("the server died")
        if problems:
            failed += 1
            print(f"smoke: {what}: FAILED: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"smoke: {what}: ok")
    return passed, failed


def disturbed_runs(runs):
    return [f"{r['server']} {r['phase']} {r['scenario']} rate={r['loadgen'].get('rate', '-')}: "
            f"{r.get('foreign_load_server_core', 0):.2f}"
            for r in runs if r.get("foreign_load_server_core", 0) > 0.1]


def cluster_main(a, runs, machine):
    """The cluster mode's results file, table and summary; the exit status."""
    extra = {}
    if a.kind == "cluster":
        rows = cluster_fixed(runs, a.p99_ms, a.max_loss)
        summary = cluster_fixed_summary(rows)
    else:
        rows, fm = cluster_findmax(runs, a.p99_ms, a.max_loss)
        extra = {"fanout": fm}
        summary = cluster_findmax_summary(rows)
    disturbed = disturbed_runs(runs)
    if disturbed:
        print("note: other processes used more than 10% of the servers' core during "
              f"{len(disturbed)} run(s): " + "; ".join(disturbed), file=sys.stderr)
    busy = [f"{r['server']} rate={r['loadgen'].get('rate')}: {r['core_busy']['loadgen_core']:.2f}"
            for r in runs if (r.get("core_busy") or {}).get("loadgen_core", 0) > 0.9]
    if busy:
        print(f"note: the load generator's core (shared with Redis) was more than 90% busy in "
              f"{len(busy)} run(s), so the load side may be the limit there: " + "; ".join(busy),
              file=sys.stderr)
    result = {
        "kind": a.kind,
        "disturbed_runs": disturbed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "limits": {"p99_ms": a.p99_ms, "max_loss": a.max_loss},
        "table": rows,
        "findmax": extra,
        "summary": summary,
        "runs": runs,
    }
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    m = machine
    if m:
        print(f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('memory_gb')} GB, {m.get('os')}, "
              f"kernel {m.get('kernel')}, {m.get('rustc')}, commit {m.get('commit')}")
        print(pinning_line(m))
    fan = next((r["loadgen"] for r in runs if r["scenario"] == "fanout"), {})
    print(f"fan-out: {fan.get('rooms')} rooms x {fan.get('size')}, {fan.get('duration_secs')} s per run; "
          "server/redis cpu = cores used over the measured window (instances summed); "
          "µs/deliv = that CPU per delivery; load core busy = the core loadgen (and Redis) ran on, whole run")
    if a.kind == "cluster":
        print_cluster_fixed(rows)
    else:
        print_cluster_findmax(rows, a.p99_ms)
    print(summary)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--machine", default="{}")
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--max-loss", type=float, default=0.001)
    ap.add_argument("--out")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    runs = load(a.runs)
    machine = json.loads(a.machine)
    if a.kind == "smoke":
        passed, failed = check_smoke(runs)
        print(f"{passed} passed, {failed} failed")
        sys.exit(1 if failed or not passed else 0)

    if a.kind in ("cluster", "cluster-findmax"):
        sys.exit(cluster_main(a, runs, machine))

    servers = [s for s in ("ours", "node") if any(r["server"] == s for r in runs)]
    extra = {}
    if a.kind == "suite":
        rows, extra = suite(runs, servers, a.p99_ms, a.max_loss)
    elif a.kind.startswith("findmax-"):
        rows, fm = findmax_rows(runs, a.kind.split("-", 1)[1], a.p99_ms, a.max_loss)
        extra = {a.kind.split("-", 1)[1]: fm}
    else:
        rows = scenario_rows(runs)
    disturbed = [f"{r['server']} {r['phase']} {r['scenario']} rate={r['loadgen'].get('rate', '-')}: "
                 f"{r.get('foreign_load_server_core', 0):.2f}"
                 for r in runs if r.get("foreign_load_server_core", 0) > 0.1]
    if disturbed:
        print("note: other processes used more than 10% of the server's core during "
              f"{len(disturbed)} run(s): " + "; ".join(disturbed), file=sys.stderr)
    result = {
        "kind": a.kind,
        "disturbed_runs": disturbed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "limits": {"p99_ms": a.p99_ms, "max_loss": a.max_loss},
        "table": rows,
        "findmax": extra,
        "summary": summary_line(rows),
        "runs": runs,
    }
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    m = machine
    if m:
        print(f"machine: {m.get('cpu')} x{m.get('cores')}, {m.get('memory_gb')} GB, {m.get('os')}, "
              f"kernel {m.get('kernel')}, node {m.get('node')}, {m.get('rustc')}, commit {m.get('commit')}; "
              f"server on CPU {m.get('server_cpu')}, loadgen on CPU {m.get('loadgen_cpu')}")
    print_table(rows)
    print(result["summary"])


if __name__ == "__main__":
    main()
