"""Notebook 06b's plots. They only draw records from :mod:`helpers.experiments.web_stack`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure

from helpers.view.plots import CYCLE, PALETTE, STYLE


def _whiskers(rows: Sequence[Mapping]) -> tuple[list[float], list[list[float]]]:
    values = [r["throughput_per_s"] for r in rows]
    errors = [[max(0.0, v - r["throughput_low"]) for v, r in zip(values, rows, strict=True)],
              [max(0.0, r["throughput_high"] - v) for v, r in zip(values, rows, strict=True)]]
    return values, errors


def convoy_plot(rows: Sequence[Mapping]) -> Figure:
    """Left: CPU-route throughput per mode (whiskers: slowest/fastest quarter second).
    Right: every /cheap request's latency beside it (box: quartiles; whiskers 5–95 %)."""
    cpu = [r for r in rows if r["side"] == "cpu"]
    cheap = [r for r in rows if r["side"] == "cheap"]
    names = [r["label"].replace(" (", "\n(") for r in cpu]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        values, errors = _whiskers(cpu)
        left.bar(range(len(cpu)), values, yerr=errors, capsize=5, color=CYCLE[:len(cpu)])
        left.set_xticks(range(len(cpu)), names, fontsize=10)
        left.set_ylabel("CPU requests/s")
        left.set_title(f"throughput of /cpu_* ({cpu[0]['ms']:g} ms each)")
        right.boxplot([r["latencies_ms"] or [float("nan")] for r in cheap], whis=(5, 95),
                      showfliers=False)
        right.set_xticks(range(1, len(cheap) + 1), names, fontsize=10)
        right.set_yscale("log")
        right.set_ylabel("latency of /cheap (ms, log)")
        right.set_title("the cheap route served beside it")
        fig.suptitle("The same CPU work three ways in one FastAPI process "
                     f"(GIL {'on' if rows[0]['gil_enabled'] else 'off'})")
    return fig


def shedding_plot(rows: Sequence[Mapping]) -> Figure:
    """p50 and p99 latency of the answered requests (log), and the 503s, per condition."""
    names = [r["label"].replace(", ", "\n") for r in rows]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        width = 0.38
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            left.bar([x + (i - 0.5) * width for x in range(len(rows))],
                     [max(r[key], 0.1) for r in rows], width=width, color=CYCLE[i],
                     label=label)
        left.set_yscale("log")
        left.set_xticks(range(len(rows)), names, fontsize=10)
        left.set_ylabel("latency of answered requests (ms, log)")
        left.set_title("latency")
        left.legend()
        ok = [r["ok"] for r in rows]
        shed = [r["http_503"] for r in rows]
        other = [r["other_errors"] for r in rows]
        right.bar(range(len(rows)), ok, color=PALETTE["green"], label="200")
        right.bar(range(len(rows)), shed, bottom=ok, color=PALETTE["orange"], label="503")
        right.bar(range(len(rows)), other, bottom=[a + b for a, b in zip(ok, shed, strict=True)],
                  color=PALETTE["vermillion"], label="other failure")
        right.set_xticks(range(len(rows)), names, fontsize=10)
        right.set_ylabel("requests")
        right.set_title("answers")
        right.legend()
        fig.suptitle(f"Open-loop load at ½× and 2× the pool's capacity "
                     f"({rows[0]['capacity']:.0f}/s)")
    return fig


def workers_plot(rows: Sequence[Mapping]) -> Figure:
    """Throughput (whiskers: quarter-second range) and p50/p99 per server."""
    names = [r["label"].replace(" -k ", "\n-k ").replace(" (", "\n(") for r in rows]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        values, errors = _whiskers(rows)
        left.bar(range(len(rows)), values, yerr=errors, capsize=5, color=CYCLE[:len(rows)])
        left.set_xticks(range(len(rows)), names, fontsize=8)
        left.set_ylabel("requests/s")
        left.set_title("throughput")
        width = 0.38
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            right.bar([x + (i - 0.5) * width for x in range(len(rows))], [r[key] for r in rows],
                      width=width, color=CYCLE[i], label=label)
        right.set_xticks(range(len(rows)), names, fontsize=8)
        right.set_ylabel("latency (ms)")
        right.set_title("latency")
        right.legend()
        fig.suptitle(f"{rows[0]['workers']} workers, /cpu {rows[0]['ms']:g} ms, "
                     f"{rows[0]['concurrency']} clients")
    return fig


def shares_plot(rows: Sequence[Mapping]) -> Figure:
    """Each worker's share of the requests, stacked, per way of sharing the port."""
    run = [r for r in rows if not r.get("skipped")]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 4.2), layout="constrained")
        ax = fig.subplots()
        for x, row in enumerate(run):
            bottom = 0.0
            for i, share in enumerate(row["shares"]):
                ax.bar(x, share, bottom=bottom, color=CYCLE[i % len(CYCLE)],
                       edgecolor="white")
                if share > 0.06:
                    ax.annotate(f"{share:.0%}", (x, bottom + share / 2), ha="center",
                                va="center", fontsize=10, color="white")
                bottom += share
        ax.axhline(1 / run[0]["workers"], color=PALETTE["black"], linestyle="--",
                   linewidth=1, label="an even share")
        ax.set_xticks(range(len(run)), [r["label"].replace(" (", "\n(") for r in run])
        ax.set_ylabel("share of requests")
        ax.legend(loc="upper right")
        skipped = [r for r in rows if r.get("skipped")]
        title = "Who served the requests"
        if skipped:
            title += f" (skipped: {skipped[0]['label']})"
        ax.set_title(title)
    return fig


def open_loop_plot(rows: Sequence[Mapping]) -> Figure:
    """Left: p50/p99 per loop. Right: each request's latency against when it started."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        width = 0.38
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            left.bar([x + (i - 0.5) * width for x in range(len(rows))], [r[key] for r in rows],
                     width=width, color=CYCLE[i], label=label)
        left.set_xticks(range(len(rows)), [r["label"] for r in rows], fontsize=10)
        left.set_ylabel("latency (ms)")
        left.set_yscale("log")
        left.legend()
        left.set_title("what each load generator reports")
        for i, row in enumerate(rows):
            points = row["timeline"]
            right.scatter([p[0] for p in points], [p[1] for p in points], s=8,
                          color=CYCLE[i], label=row["label"], alpha=0.6)
        right.set_xlabel("request started (s)")
        right.set_ylabel("latency (ms, log)")
        right.set_yscale("log")
        right.legend()
        right.set_title("latency through the run")
        fig.suptitle(f"Overload: capacity about {rows[0]['capacity']:.0f} requests/s")
    return fig
