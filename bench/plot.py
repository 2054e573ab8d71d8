#!/usr/bin/env python3
"""Draws a compare.sh results file as a PNG beside it (same name, .png): latency p99 against
offered rate for each server (fan-out and relay find-max steps), and memory per idle
connection; for the cluster mode, the same latency curve per setup (find-max) or, for
fixed-rate runs, CPU per delivery and p99 per setup and rate. Needs matplotlib
(pip install matplotlib).

    python3 bench/plot.py bench/results/suite-20250101T000000Z.json
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

COLORS = {"ours": "#d2691e", "node": "#3c873a",
          "mem1": "#d2691e", "redis1": "#a32020", "redis2": "#1f5fa8", "redis3": "#6a3d9a"}
LABELS = {"ours": "ProLiteMeet (Rust)", "node": "Node original",
          "mem1": "1 instance, memory mode", "redis1": "1 instance + Redis",
          "redis2": "2 instances + Redis", "redis3": "3 instances + Redis"}


def steps(result, scenario):
    fm = (result.get("findmax") or {}).get(scenario) or {}
    return {server: s.get("steps", []) for server, s in fm.items()}


def kb_per_client(result):
    out = {}
    for r in result.get("runs", []):
        if r["scenario"] != "idle" or r["phase"] != "measure":
            continue
        joined = r["loadgen"].get("joined") or 0
        if joined and r["rss_kb"]["loaded"]:
            out[r["server"]] = ((r["rss_kb"]["loaded"] - r["rss_kb"]["start"]) / joined,
                                r["loadgen"].get("clients"))
    return out


def latency_panel(ax, data, title, xlabel, limit_ms):
    for server, points in data.items():
        pts = sorted((p["offered_per_sec"], p["p99_ms"]) for p in points if p.get("p99_ms") is not None)
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o", color=COLORS.get(server), label=LABELS.get(server, server))
        held = [p for p in points if p.get("held")]
        if held:
            best = max(held, key=lambda p: p["delivered_per_sec"])
            ax.annotate(f"max {best['delivered_per_sec']:,.0f}/s", (best["offered_per_sec"], best["p99_ms"]),
                        textcoords="offset points", xytext=(-70, 8), fontsize=8, color=COLORS.get(server))
    ax.axhline(limit_ms, color="grey", linestyle="--", linewidth=1)
    ax.text(ax.get_xlim()[0], limit_ms * 1.1, f" p99 limit {limit_ms:g} ms", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("latency p99 (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def memory_panel(ax, mem):
    servers = [s for s in ("ours", "node") if s in mem]
    values = [mem[s][0] for s in servers]
    bars = ax.bar([LABELS.get(s, s) for s in servers], values, color=[COLORS.get(s) for s in servers])
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1f} KB", ha="center", va="bottom", fontsize=9)
    ax.axhline(7.5, color="grey", linestyle="--", linewidth=1)
    ax.text(len(servers) - 0.5, 7.7, "target 7.5 KB", color="grey", fontsize=8, ha="right")
    clients = next(iter(mem.values()))[1]
    ax.set_ylabel("server RSS per idle client (KB)")
    ax.set_title(f"memory per connection ({clients:,} idle clients)")
    ax.grid(True, axis="y", alpha=0.3)


def cluster_fixed_panels(result):
    """Fixed-rate cluster runs: CPU per delivery (server, Redis stacked) and p99, grouped by rate."""
    rows = [r for r in result.get("table", []) if "setup" in r and "rate" in r]
    if not rows:
        return []
    rates = sorted({r["rate"] for r in rows})
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    width = 0.8 / len(setups)

    def bars(ax, value, stacked=None):
        for k, setup in enumerate(setups):
            xs, ys, zs = [], [], []
            for i, rate in enumerate(rates):
                row = next((r for r in rows if r["setup"] == setup and r["rate"] == rate), None)
                if row is None or row.get(value) is None:
                    continue
                xs.append(i + (k - (len(setups) - 1) / 2) * width)
                ys.append(row[value])
                zs.append((row.get(stacked) or 0) if stacked else 0)
            ax.bar(xs, ys, width, color=COLORS.get(setup), label=LABELS.get(setup, setup))
            if stacked and any(zs):
                ax.bar(xs, zs, width, bottom=ys, color=COLORS.get(setup), alpha=0.35, hatch="//",
                       label=f"{LABELS.get(setup, setup)}: Redis")
        ax.set_xticks(range(len(rates)))
        ax.set_xticklabels([f"{r:,.0f} msg/s" for r in rates])
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)

    def cpu(ax):
        bars(ax, "server_us_per_delivery", "redis_us_per_delivery")
        ax.set_ylabel("CPU µs per delivery")
        ax.set_title("CPU per delivery (server instances; Redis hatched)")

    def p99(ax):
        bars(ax, "p99_ms")
        ax.set_ylabel("latency p99 (ms)")
        ax.set_title("fan-out latency p99")

    return [cpu, p99]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path = sys.argv[1]
    with open(path) as f:
        result = json.load(f)
    limit = (result.get("limits") or {}).get("p99_ms", 50)
    panels = []
    cluster = str(result.get("kind", "")).startswith("cluster")
    fan_run = next((r["loadgen"] for r in result.get("runs", []) if r.get("scenario") == "fanout"), {})
    fan_title = f"chat fan-out ({fan_run.get('rooms', 100)} rooms x {fan_run.get('size', 5)})"
    fan = steps(result, "fanout")
    if any(fan.values()):
        panels.append(lambda ax: latency_panel(ax, fan, fan_title, "offered chat deliveries/s", limit))
    if result.get("kind") == "cluster":
        panels.extend(cluster_fixed_panels(result))
    rel = steps(result, "relay")
    if any(rel.values()):
        panels.append(lambda ax: latency_panel(ax, rel, "WebRTC offer relay (500 pairs)",
                                               "offered relays/s", limit))
    mem = kb_per_client(result)
    if mem:
        panels.append(lambda ax: memory_panel(ax, mem))
    if not panels:
        print("plot: nothing to draw in this result", file=sys.stderr)
        return
    width = max(5.5 * len(panels), 8.0 if cluster else 0.0)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.5), squeeze=False)
    for panel, ax in zip(panels, axes[0]):
        panel(ax)
    m = result.get("machine") or {}
    if cluster:
        fig.suptitle(f"ProLiteMeet cluster mode, {fan_title}\nevery instance on CPU {m.get('server_cpu')}, "
                     f"Redis on CPU {m.get('redis_cpu')}, loadgen on CPU {m.get('loadgen_cpu')}; "
                     f"{m.get('cpu', '?')} x{m.get('cores', '?')}, {result.get('date', '')[:10]}", fontsize=9)
    else:
        fig.suptitle(f"ProLiteMeet server vs Node original — each pinned to one core; "
                     f"{m.get('cpu', '?')} x{m.get('cores', '?')}, {m.get('os', '')}, {result.get('date', '')[:10]}",
                     fontsize=10)
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    fig.savefig(out, dpi=110)
    print(f"chart: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
