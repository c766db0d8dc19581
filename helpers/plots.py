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

from .experiments import ScalingResult
from .measure import AmdahlFit, Spread
from .measure import spread as spread_of
from .trace import TaskRecord

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
    (``helpers.pool_experiments.TimelineResult``).
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

    ``runs`` are ``helpers.eventloop.LoopRun`` results. The shaded band is the CPU
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
