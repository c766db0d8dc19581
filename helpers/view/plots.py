"""Figures for the course: scaling curves and per-worker timelines.

Plots never run experiments: they draw a result object they are given. Every
timing plot shows the median *and* the spread over repeats; fitted models are drawn
as dashed lines with their range and labelled as models. Colours come from the
Okabe–Ito palette (safe for colour-blind readers) and fonts are sized for a projector.

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot``, so
widgets can redraw them as often as they like without piling up open figures.
In a notebook, run ``%matplotlib inline`` once and end a cell with the figure.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure

from helpers.core.measure import AmdahlFit, Spread
from helpers.core.measure import spread as spread_of
from helpers.core.trace import TaskRecord
from helpers.experiments.strong_scaling import ScalingResult

#: Okabe & Ito (2008), "Color Universal Design": distinguishable with any colour vision.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
CYCLE = [PALETTE[c] for c in ("blue", "orange", "green", "vermillion", "sky", "purple")]

SHORT_NAMES = {"ProcessPoolExecutor": "ProcessPool\nExecutor", "multiprocessing.Pool": "mp.Pool"}

STYLE = {
    "font.size": 13,
    "axes.titlesize": 15,
    "axes.labelsize": 13,
    "legend.fontsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def scaling_plot(
    result: ScalingResult,
    references: Mapping[str, Mapping[int, Spread]] | None = None,
    model_up_to: int | None = None,
) -> Figure:
    """Speedup against workers: measured median and range, ideal line, fitted Amdahl model.

    ``references`` maps a label (a reference machine) to its measured speedups, drawn
    beside this machine's. The model is extended to ``model_up_to`` workers (default:
    16, or more if measured) so a 2-CPU learner sees what it *predicts* for bigger
    machines — labelled as a prediction, not a measurement.
    """
    speedups = result.speedups()
    workers = sorted(speedups)
    top = max(model_up_to or 16, *workers)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 5), layout="constrained")
        ax = fig.add_subplot()
        ideal = range(1, top + 1)
        ax.plot(ideal, ideal, color=PALETTE["black"], linestyle=":", label="ideal (p×)")
        _draw_fit(ax, result.fit(), top)
        _draw_measured(ax, speedups, f"measured here ({result.workload}, {result.executor}es)"
                       if result.executor == "process" else
                       f"measured here ({result.workload}, threads)", PALETTE["blue"])
        for colour, (label, points) in zip(CYCLE[2:], (references or {}).items(), strict=False):
            _draw_measured(ax, points, label, colour, marker="s")
        if result.usable_cpus < top:
            ax.axvspan(result.usable_cpus + 0.5, top + 0.5, color=PALETTE["sky"], alpha=0.08)
            ax.axvline(result.usable_cpus + 0.5, color=PALETTE["sky"], linewidth=1)
            ax.annotate(f"beyond this kernel's {result.usable_cpus} usable CPUs",
                        xy=(result.usable_cpus + 0.7, 0.3), fontsize=10, va="bottom")
        ax.set_xlabel("workers")
        ax.set_ylabel("speedup over one worker")
        ax.set_title(f"Strong scaling: {result.tasks} tasks of {result.task_seconds * 1000:.0f} ms")
        ax.set_xlim(0.5, top + 0.5)
        ax.set_ylim(0, top + 0.5)
        ax.legend(loc="upper left")
    return fig


def weak_scaling_plot(weak: object, strong: ScalingResult | None = None) -> Figure:
    """Gustafson beside Amdahl: the scaled speedup of a job that grows with the workers
    (a :class:`~helpers.experiments.weak_scaling.WeakScalingResult`), and, if given, the
    speedup of a fixed job measured on the same machine."""
    scaled = weak.scaled_speedup()
    top = max(scaled)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 5), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(range(1, top + 1), range(1, top + 1), color=PALETTE["black"], linestyle=":",
                label="ideal (p×)")
        _draw_measured(ax, scaled, f"weak: {weak.tasks_per_worker} tasks per worker "
                       "(scaled speedup)", PALETTE["green"])
        if strong is not None:
            _draw_measured(ax, strong.speedups(), f"strong: one job of {strong.tasks} tasks",
                           PALETTE["blue"], marker="s")
        ax.set_xlabel("workers")
        ax.set_ylabel("work per second, over one worker")
        ax.set_title("Weak scaling (Gustafson) beside strong scaling (Amdahl)")
        ax.set_xlim(0.5, top + 0.5)
        ax.set_ylim(0, top + 0.5)
        ax.legend(loc="upper left")
    return fig


def _draw_measured(ax, points: Mapping[int, Spread], label: str, colour: str,
                   marker: str = "o") -> None:
    xs = sorted(points)
    medians = [points[x].median for x in xs]
    below = [points[x].median - points[x].low for x in xs]
    above = [points[x].high - points[x].median for x in xs]
    ax.errorbar(xs, medians, yerr=[below, above], color=colour, marker=marker, markersize=7,
                capsize=4, linewidth=2, label=f"{label}: median, min–max")


def _draw_fit(ax, fit: AmdahlFit | None, top: int) -> None:
    if fit is None:
        return
    xs = [1 + i * (top - 1) / 100 for i in range(101)]
    middle, pessimistic, optimistic = zip(*(fit.predict(x) for x in xs), strict=True)
    colour = PALETTE["orange"]
    trust = "" if fit.reliable else f", from only {fit.parallel_points} parallel point(s)"
    ax.fill_between(xs, pessimistic, optimistic, color=colour, alpha=0.2)
    ax.plot(xs, middle, color=colour, linestyle="--", linewidth=2,
            label=f"Amdahl model, serial fraction {fit.serial_fraction:.1%}{trust}")


def timeline_plot(records: Sequence[TaskRecord] | Iterable[TaskRecord],
                  title: str = "Which worker ran which task, when") -> Figure:
    """A Gantt chart: one row per worker, one bar per task.

    Times are shown from the moment the first task was submitted, so records with
    absolute clock times (``WorkerPool.trace()``) and relative ones plot alike.
    """
    records = sorted(records, key=lambda r: r.started)
    if not records:
        raise ValueError("timeline_plot needs at least one task record")
    origin = min(r.submitted for r in records)
    workers = sorted({r.worker for r in records})
    row = {w: i for i, w in enumerate(workers)}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 1.2 + 0.5 * len(workers)), layout="constrained")
        ax = fig.add_subplot()
        for r in records:
            colour = CYCLE[r.task_id % len(CYCLE)]
            ax.broken_barh([(r.started - origin, r.run_seconds)], (row[r.worker] - 0.4, 0.8),
                           facecolors=colour, edgecolor="white", linewidth=0.5)
        ax.set_yticks(range(len(workers)), workers)
        ax.set_xlabel("seconds since the first task was submitted")
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        end = max(r.finished for r in records) - origin
        ax.set_xlim(0, end * 1.02)
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for widgets and handouts)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def timelines_plot(timelines: Sequence, title: str = "The same job on each pool") -> Figure:
    """One Gantt chart per pool, stacked, on a shared time axis.

    ``timelines`` are results with ``.pool``, ``.seconds`` and ``.records``
    (``helpers.experiments.pools.TimelineResult``).
    """
    if not timelines:
        raise ValueError("timelines_plot needs at least one timeline")
    with matplotlib.rc_context(STYLE):
        rows = [len({r.worker for r in t.records}) for t in timelines]
        fig = Figure(figsize=(9, 1.0 + sum(0.45 * n + 0.6 for n in rows)), layout="constrained")
        axes = fig.subplots(len(timelines), 1, sharex=True,
                            gridspec_kw={"height_ratios": [n + 1 for n in rows]}, squeeze=False)
        end = max(t.seconds for t in timelines)
        for ax, result in zip(axes[:, 0], timelines, strict=True):
            workers = sorted({r.worker for r in result.records})
            row = {w: i for i, w in enumerate(workers)}
            for r in result.records:
                ax.broken_barh([(r.started, r.run_seconds)], (row[r.worker] - 0.4, 0.8),
                               facecolors=CYCLE[r.task_id % len(CYCLE)], edgecolor="white",
                               linewidth=0.3)
            ax.axvline(result.seconds, color=PALETTE["black"], linewidth=1)
            ax.set_yticks(range(len(workers)), [f"worker {i + 1}" for i in range(len(workers))])
            ax.set_title(f"{result.pool} (chunksize {result.chunksize}): "
                         f"{result.seconds * 1000:.0f} ms", loc="left", fontsize=12)
            ax.grid(axis="y", visible=False)
        axes[-1, 0].set_xlabel("seconds since the job was handed to the pool "
                               "(black line: last result back)")
        axes[-1, 0].set_xlim(0, end * 1.03)
        fig.suptitle(title)
    return fig


def overhead_plot(measurements: Sequence) -> Figure:
    """Per-task cost of each pool: tiny tasks one by one, and auto-chunked map.

    Bars are medians over the repeats; whiskers show the min–max range.
    """
    panels = [("tiny", "one submit per tiny task"),
              ("map-auto", "map over tiny tasks, auto chunks")]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 4), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (experiment, title) in zip(axes, panels, strict=True):
            chosen = [m for m in measurements if m.experiment == experiment]
            names = sorted({m.executor for m in chosen}, key=lambda n: (n != "WorkerPool", n))
            if not names:
                ax.set_visible(False)
                continue
            values = [spread_of([m.seconds / m.tasks * 1e6 for m in chosen if m.executor == n])
                      for n in names]
            ax.bar(range(len(names)), [v.median for v in values],
                   yerr=[[v.median - v.low for v in values], [v.high - v.median for v in values]],
                   color=CYCLE[: len(names)], capsize=5)
            ax.set_xticks(range(len(names)), [SHORT_NAMES.get(n, n) for n in names], fontsize=10)
            ax.set_ylabel("µs per task (median, min–max)")
            ax.set_title(title, fontsize=12)
            for x, v in enumerate(values):
                ax.annotate(f"{v.median:.2f}", (x, v.high), ha="center", va="bottom", fontsize=10)
    return fig


def lag_timeline_plot(runs: Sequence, title: str = "Event-loop lag while CPU work runs") -> Figure:
    """One panel per strategy: how late the loop's heartbeat woke, over time.

    Each heartbeat is a vertical line at the moment it woke, as tall as it was late:
    a blocked loop shows no heartbeats at all, then one tall "wall" when it gets free.

    ``runs`` are ``helpers.experiments.eventloop.LoopRun`` results. The shaded band is the CPU
    phase; each panel's title gives the worst lag, the requests answered per second
    during the CPU phase, and how long the CPU work took.
    """
    if not runs:
        raise ValueError("lag_timeline_plot needs at least one run")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 0.6 + 1.6 * len(runs)), layout="constrained")
        axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
        top = max(max(run.max_lag for run in runs) * 1000 * 1.15, 10)
        for ax, run, colour in zip(axes, runs, itertools.cycle(CYCLE), strict=False):
            times = [t for t, _ in run.lag]
            lags = [lag * 1000 for _, lag in run.lag]
            ax.axvspan(run.cpu_start, run.cpu_end, color=PALETTE["yellow"], alpha=0.3, lw=0)
            ax.vlines(times, 0, lags, color=colour, linewidth=2)  # one line per heartbeat
            ax.set_ylim(0, top)
            ax.set_ylabel("lag (ms)")
            ax.set_title(f"{run.strategy}: worst lag {run.max_lag * 1000:.0f} ms, "
                         f"{run.requests_per_second():.0f} requests/s during CPU work, "
                         f"CPU work took {run.cpu_seconds:.2f} s", loc="left", fontsize=11)
        axes[-1].set_xlabel("seconds (shaded: the CPU work)")
        fig.suptitle(title)
    return fig


def speedup_by_workload_plot(results: Mapping[str, ScalingResult],
                             title: str = "Threads: speedup per workload") -> Figure:
    """One line per workload: median speedup over one thread, min–max bars, ideal line."""
    if not results:
        raise ValueError("speedup_by_workload_plot needs at least one result")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 5), layout="constrained")
        ax = fig.add_subplot()
        top = max(max(r.workers) for r in results.values())
        ax.plot([1, top], [1, top], color=PALETTE["black"], linestyle=":", label="ideal")
        for (name, result), colour in zip(results.items(), itertools.cycle(CYCLE),
                                          strict=False):
            _draw_measured(ax, result.speedups(), name, colour)
        usable = next(iter(results.values())).usable_cpus
        if usable < top:
            ax.axvline(usable + 0.5, color=PALETTE["sky"], linewidth=1)
        ax.set_xlabel("threads")
        ax.set_ylabel("speedup over one thread")
        ax.set_xticks(range(1, top + 1))
        ax.set_ylim(0, top + 0.5)
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=10)
    return fig


def cpu_use_plot(runs: Sequence, title: str = "Busy CPUs while the job runs") -> Figure:
    """Busy CPUs over time (sampled from another process), one line per executor."""
    if not runs:
        raise ValueError("cpu_use_plot needs at least one run")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.add_subplot()
        for run, colour in zip(runs, itertools.cycle(CYCLE), strict=False):
            times = [t for t, _ in run.samples]
            busy = [b for _, b in run.samples]
            ax.step(times, busy, where="post", color=colour, linewidth=2,
                    label=f"{run.workers} {run.executor}s ({run.workload}): "
                          f"median {run.median_busy:.1f} busy")
        ax.set_xlabel("seconds")
        ax.set_ylabel("busy CPUs")
        ax.set_ylim(0, max(2.5, max(b for r in runs for _, b in r.samples) * 1.15))
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=10)
    return fig


def summary_plot(rows: Sequence, title: str = "One job, every way to run it") -> Figure:
    """Horizontal bars: speedup over serial (median), with the run-time spread in the label."""
    if not rows:
        raise ValueError("summary_plot needs at least one row")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 1.2 + 0.55 * len(rows)), layout="constrained")
        ax = fig.add_subplot()
        labels = [row.label for row in rows]
        ax.barh(range(len(rows)), [row.speedup for row in rows],
                color=[CYCLE[i % len(CYCLE)] for i in range(len(rows))])
        for i, row in enumerate(rows):
            ax.annotate(f" {row.speedup:.2f}×  ({row.seconds.median:.2f} s, "
                        f"{row.seconds.low:.2f}–{row.seconds.high:.2f})",
                        (row.speedup, i), va="center", fontsize=10)
        ax.set_yticks(range(len(rows)), labels, fontsize=10)
        ax.invert_yaxis()
        ax.set_xlabel("speedup over serial (median of the repeats; run time and range)")
        ax.set_xlim(0, max(row.speedup for row in rows) * 1.6)
        ax.set_title(title)
    return fig


# --- notebook 06: servers under load ---


def _two_lines(name: str) -> str:
    return name.replace(", ", ",\n").replace(" + ", "\n+ ")


def server_comparison_plot(rows: Sequence[Mapping], title: str = "The same load on each server"
                           ) -> Figure:
    """Throughput (bar: whole run; whiskers: slowest and fastest quarter second) and
    latency percentiles (p50, p95, p99) per server."""
    names = [_two_lines(r["server"]) + f"\n({r['workers']} proc.)" for r in rows]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        values = [r["throughput_per_s"] for r in rows]
        errors = [[max(0.0, v - r["throughput_low"]) for v, r in zip(values, rows, strict=True)],
                  [max(0.0, r["throughput_high"] - v) for v, r in zip(values, rows, strict=True)]]
        left.bar(range(len(rows)), values, yerr=errors, capsize=5, color=CYCLE[: len(rows)])
        left.set_xticks(range(len(rows)), names, fontsize=9)
        left.set_ylabel("requests/s (whole run; quarter-second range)")
        left.set_title("throughput", fontsize=12)
        for x, (v, r) in enumerate(zip(values, rows, strict=True)):
            left.annotate(f"{v:.0f}", (x, max(v, r["throughput_high"])), ha="center",
                          va="bottom", fontsize=10)
        width = 0.27
        for i, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"),
                                          ("p99_ms", "p99"))):
            right.bar([x + (i - 1) * width for x in range(len(rows))], [r[key] for r in rows],
                      width=width, color=CYCLE[i], label=label)
        right.set_xticks(range(len(rows)), names, fontsize=9)
        right.set_ylabel("latency (ms)")
        right.set_title("latency percentiles", fontsize=12)
        right.legend()
        fig.suptitle(title)
    return fig


def throughput_by_workers_plot(rows: Sequence[Mapping], ms: float, usable: int) -> Figure:
    """Requests/s against worker count, with the CPUs' ceiling: usable CPUs × 1000/ms."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7, 4.4), layout="constrained")
        ax = fig.subplots()
        workers = [r["workers"] for r in rows]
        values = [r["throughput_per_s"] for r in rows]
        errors = [[max(0.0, v - r["throughput_low"]) for v, r in zip(values, rows, strict=True)],
                  [max(0.0, r["throughput_high"] - v) for v, r in zip(values, rows, strict=True)]]
        ax.errorbar(workers, values, yerr=errors, marker="o", capsize=4, color=PALETTE["blue"],
                    label="measured (whole run; quarter-second range)")
        top = max(workers)
        ceiling = [min(w, usable) * 1000 / ms for w in range(1, top + 1)]
        ax.plot(range(1, top + 1), ceiling, color="grey", linestyle="--",
                label=f"ceiling: min(workers, {usable} CPUs) × {1000 / ms:.0f}/s")
        ax.set_xticks(workers)
        ax.set_xlabel("worker processes")
        ax.set_ylabel("requests/s")
        ax.set_title(f"/cpu?ms={ms:g} on a pre-fork server")
        ax.legend(fontsize=10)
    return fig


def disruption_plot(runs: Sequence, interval: float = 0.1) -> Figure:
    """Answered and failed requests per interval, with the disruption and the supervisor's
    events marked: one panel per run."""
    from helpers.servers.loadgen import per_interval

    marks = {"died": PALETTE["vermillion"], "replaced": PALETTE["green"],
             "started": PALETTE["green"], "retired": PALETTE["orange"]}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 3.4 * len(runs)), layout="constrained")
        axes = fig.subplots(len(runs), 1, squeeze=False)[:, 0]
        for ax, run in zip(axes, runs, strict=True):
            starts, answered, failed = per_interval(run.result, interval)
            ax.bar(starts, [n / interval for n in answered], width=interval, align="edge",
                   color=PALETTE["sky"], label="answered")
            ax.bar(starts, [n / interval for n in failed], width=interval, align="edge",
                   color=PALETTE["vermillion"], label=f"failed ({run.result.failures} in all)")
            ax.axvline(run.at_seconds, color=PALETTE["black"], linewidth=2)
            ax.annotate(run.what, (run.at_seconds, ax.get_ylim()[1] * 0.95), fontsize=10,
                        ha="left", va="top", xytext=(4, 0), textcoords="offset points")
            for event in run.events:
                if 0 <= event.seconds <= run.result.wall_seconds and event.kind in marks:
                    ax.axvline(event.seconds, color=marks[event.kind], linestyle=":",
                               linewidth=1.5)
            ax.set_ylabel("requests/s")
            ax.set_title(f"{run.what}: dotted lines are the supervisor's events "
                         "(red: died, green: started, orange: retired)", fontsize=11)
            ax.legend(loc="lower right", fontsize=10)
        axes[-1].set_xlabel(f"seconds since the load started ({interval * 1000:.0f} ms bins)")
    return fig


def memory_plot(rows: Sequence[Mapping]) -> Figure:
    """Memory per worker (USS: its own; PSS: its share of shared pages), per configuration."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    moments = list(dict.fromkeys(r["moment"] for r in rows))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.4), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (key, label) in zip(axes, (("uss_mib", "USS: memory only this worker uses"),
                                           ("pss_mib", "PSS: its share of all it maps")),
                                    strict=True):
            width = 0.8 / len(moments)
            for i, moment in enumerate(moments):
                spans = [spread_of([r[key] for r in rows
                                    if r["config"] == c and r["moment"] == moment])
                         for c in configs]
                xs = [x + i * width for x in range(len(configs))]
                ax.bar(xs, [s.median for s in spans], width=width, color=CYCLE[i],
                       yerr=[[s.median - s.low for s in spans], [s.high - s.median for s in spans]],
                       capsize=4, label=moment)
                for x, s in zip(xs, spans, strict=True):
                    ax.annotate(f"{s.median:.0f}", (x, s.high), ha="center", va="bottom",
                                fontsize=9)
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(configs))], configs,
                          fontsize=10)
            ax.set_ylabel("MiB per worker (median, min–max)")
            ax.set_title(label, fontsize=12)
            ax.legend(fontsize=10)
    return fig


# --- notebooks 03 and 03b: starting processes, and what they cost ---


def start_method_plot(rows: Sequence[Mapping]) -> Figure:
    """Time to first result (median, min–max) and memory per worker, per start method."""
    names = [r["method"] for r in rows]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2)
        values = [r["first_result_ms"] for r in rows]
        left.bar(names, values, color=CYCLE[: len(rows)], capsize=5,
                 yerr=[[v - r["low_ms"] for v, r in zip(values, rows, strict=True)],
                       [r["high_ms"] - v for v, r in zip(values, rows, strict=True)]])
        for x, r in enumerate(rows):
            left.annotate(f"{r['first_result_ms']:.0f} ms", (x, r["high_ms"]), ha="center",
                          va="bottom", fontsize=10)
        left.set_ylabel("ms (median, min–max)")
        left.set_title("a new pool's first result", fontsize=12)
        width = 0.4
        for i, (key, label) in enumerate((("uss_mib", "USS (its own)"),
                                          ("pss_mib", "PSS (incl. share of shared)"))):
            xs = [x + (i - 0.5) * width for x in range(len(rows))]
            right.bar(xs, [r[key] for r in rows], width=width, color=CYCLE[3 + i], label=label)
        right.set_xticks(range(len(rows)), names)
        right.set_ylabel("MiB per worker (median)")
        right.set_title("memory per worker", fontsize=12)
        right.legend(fontsize=10)
    return fig


def pickling_plot(rows: Sequence[Mapping]) -> Figure:
    """Pickling and a worker round trip against payload size (log-log), and cost per MB."""
    sizes = [r["bytes"] / 2**20 for r in rows]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.2), layout="constrained")
        left, right = fig.subplots(1, 2)
        trip = [r["round_trip_s"] * 1000 for r in rows]
        below = [t - r["round_trip_low"] * 1000 for t, r in zip(trip, rows, strict=True)]
        above = [r["round_trip_high"] * 1000 - t for t, r in zip(trip, rows, strict=True)]
        left.errorbar(sizes, trip, yerr=[below, above], marker="o", capsize=3,
                      color=PALETTE["blue"], label="round trip to a worker (median, min–max)")
        left.plot(sizes, [r["pickle_s"] * 1000 for r in rows], marker="s",
                  color=PALETTE["orange"], label="pickle + unpickle here")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("payload (MiB)")
        left.set_ylabel("ms")
        left.set_title("time to hand over a payload", fontsize=12)
        left.legend(fontsize=10)
        right.plot(sizes, [r["round_trip_s"] * 1000 / s for r, s in zip(rows, sizes, strict=True)],
                   marker="o", color=PALETTE["blue"])
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("payload (MiB)")
        right.set_ylabel("ms per MiB")
        right.set_title("cost per MiB: fixed costs dominate small payloads", fontsize=12)
    return fig


def break_even_plot(rows: Sequence[Mapping]) -> Figure:
    """Speedup against task duration, one line per chunk size; the losing region shaded."""
    chunks = sorted({r["chunksize"] for r in rows})
    workers = rows[0]["workers"]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 4.8), layout="constrained")
        ax = fig.subplots()
        for colour, chunk in zip(CYCLE, chunks, strict=False):
            mine = sorted((r for r in rows if r["chunksize"] == chunk), key=lambda r: r["task_ms"])
            ax.errorbar([r["task_ms"] for r in mine], [r["speedup"] for r in mine],
                        yerr=[[r["speedup"] - r["low"] for r in mine],
                              [r["high"] - r["speedup"] for r in mine]],
                        marker="o", capsize=3, color=colour, label=f"chunksize={chunk}")
        ax.axhline(workers, color="grey", linestyle=":", label=f"ideal ({workers}×)")
        ax.axhspan(0, 1, color=PALETTE["vermillion"], alpha=0.12)
        ax.annotate("slower than serial", (min(r["task_ms"] for r in rows), 0.5), fontsize=10)
        ax.set_xscale("log")
        sizes = sorted({r["task_ms"] for r in rows})
        ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
        ax.minorticks_off()
        ax.set_ylim(0, workers + 0.5)
        ax.set_xlabel("task duration (ms, log scale)")
        ax.set_ylabel("speedup over serial (median, min–max)")
        ax.set_title(f"ProcessPoolExecutor.map on {workers} workers: when do processes pay?")
        ax.legend(fontsize=10, loc="lower right")
    return fig


# --- notebook 04: joblib ---


def backend_plot(rows: Sequence[Mapping]) -> Figure:
    """Speedup over serial per joblib backend, one panel per workload (median, min–max)."""
    names = list(dict.fromkeys(r["workload"] for r in rows))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(5.5 * len(names), 4.2), layout="constrained")
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            mine = [r for r in rows if r["workload"] == name]
            values = [r["speedup"] for r in mine]
            ax.bar(range(len(mine)), values, color=CYCLE[: len(mine)], capsize=5,
                   yerr=[[v - r["low"] for v, r in zip(values, mine, strict=True)],
                         [r["high"] - v for v, r in zip(values, mine, strict=True)]])
            ax.axhline(mine[0]["n_jobs"], color="grey", linestyle=":",
                       label=f"ideal ({mine[0]['n_jobs']}×)")
            ax.set_xticks(range(len(mine)), [r["backend"] for r in mine], fontsize=10)
            for x, r in enumerate(mine):
                ax.annotate(f"{r['speedup']:.2f}×", (x, r["high"]), ha="center", va="bottom",
                            fontsize=10)
            ax.set_ylabel("speedup over serial (median, min–max)")
            ax.set_title(f"{name} workload", fontsize=12)
            ax.legend(fontsize=10, loc="lower right")
    return fig


def heatmap_plot(result: Mapping, title: str = "Seconds for one NumPy job") -> Figure:
    """A grid of seconds: joblib workers (rows) × BLAS threads per worker (columns)."""
    workers, threads = result["workers"], result["threads"]
    grid = [[result["seconds"][(w, t)] for t in threads] for w in workers]
    best = min(min(row) for row in grid)
    worst = max(max(row) for row in grid)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8, 5.2), layout="constrained")
        ax = fig.subplots()
        image = ax.imshow(grid, cmap="cividis_r", origin="lower")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                low, high = result["ranges"][(workers[i], threads[j])]
                text_colour = "white" if value > (best + worst) / 2 else "black"
                ax.annotate(f"{value:.2f} s ({low:.2f}–{high:.2f})\n{value / best:.1f}×", (j, i),
                            ha="center", va="center", fontsize=10, color=text_colour)
        ax.set_xticks(range(len(threads)), [str(t) for t in threads])
        ax.set_yticks(range(len(workers)), [str(w) for w in workers])
        ax.set_xlabel("BLAS threads per worker (inner_max_num_threads)")
        ax.set_ylabel("joblib workers (n_jobs)")
        ax.set_title(f"{title}: {result['tasks']} tasks, {result['usable']} usable CPUs",
                     fontsize=12)
        fig.colorbar(image, ax=ax, label=f"seconds (median of {result['repeats']} runs)")
        ax.grid(False)
    return fig


# --- notebook 07: moving data ---


def transfer_plot(rows: Sequence[Mapping]) -> Figure:
    """Seconds to hand a payload to a reader (log-log, median and range) and throughput."""
    measured = [r for r in rows if "seconds" in r]
    methods = list(dict.fromkeys(r["method"] for r in measured))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        for colour, method in zip(CYCLE, methods, strict=False):
            mine = sorted((r for r in measured if r["method"] == method), key=lambda r: r["bytes"])
            sizes = [r["bytes"] / 2**20 for r in mine]
            left.errorbar(sizes, [r["seconds"] * 1000 for r in mine], capsize=3, marker="o",
                          yerr=[[(r["seconds"] - r["low"]) * 1000 for r in mine],
                                [(r["high"] - r["seconds"]) * 1000 for r in mine]],
                          color=colour, label=method)
            right.plot(sizes, [r["mib_per_s"] for r in mine], marker="o", color=colour,
                       label=method)
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("payload (MiB)")
        left.set_ylabel("ms to hand over and read (median, min–max)")
        left.set_title("time", fontsize=12)
        right.set_ylabel("MiB/s")
        right.set_title("throughput: big payloads expose the copies", fontsize=12)
        left.legend(fontsize=9)
    return fig
