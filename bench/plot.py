#!/usr/bin/env python3
"""Draws a compare.sh results file as a PNG beside it (same name, .png): latency p99 against
offered rate for each server (fan-out and relay find-max steps), and memory per idle
connection. Needs matplotlib (pip install matplotlib).

    python3 bench/plot.py bench/results/suite-20250101T000000Z.json
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401

COLORS = {"ours": "#d2691e", "node": "#3c873a"}
LABELS = {"ours": "ProLiteMeet (Rust)", "node": "Node original"}


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


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path = sys.argv[1]
    with open(path) as f:
        result = json.load(f)
    limit = (result.get("limits") or {}).get("p99_ms", 50)
    panels = []
    fan = steps(result, "fanout")
    if any(fan.values()):
        panels.append(lambda ax: latency_panel(ax, fan, "chat fan-out (100 rooms x 5)",
                                               "offered chat deliveries/s", limit))
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
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for panel, ax in zip(panels, axes[0]):
        panel(ax)
    m = result.get("machine") or {}
    fig.suptitle(f"ProLiteMeet server vs Node original — each pinned to one core; "
                 f"{m.get('cpu', '?')} x{m.get('cores', '?')}, {m.get('os', '')}, {result.get('date', '')[:10]}",
                 fontsize=10)
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    fig.savefig(out, dpi=110)
    print(f"chart: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
