"""Figures for notebooks 08 and 09 (same style and palette as :mod:`helpers.view.plots`).

Plots draw results they are given; the decision chart and the money plot draw the
cost model of :mod:`helpers.experiments.advisor`, labelled as a model, with measured
points beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from helpers.core import machine
from helpers.core.measure import Spread
from helpers.experiments import advisor
from helpers.view.plots import CYCLE, PALETTE, STYLE


def bars_with_spread(values: Mapping[str, Spread], xlabel: str, title: str,
                     reference: float | None = 1.0) -> Figure:
    """Horizontal bars (median) with whiskers (min–max over repeats)."""
    names = list(values)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 1.2 + 0.7 * len(names)), layout="constrained")
        ax = fig.add_subplot()
        for i, name in enumerate(names):
            s = values[name]
            ax.barh(i, s.median, color=CYCLE[i % len(CYCLE)])
            ax.errorbar(s.median, i, xerr=[[s.median - s.low], [s.high - s.median]],
                        color=PALETTE["black"], capsize=4)
            ax.text(s.high, i, f"  {s.median:.2f}", va="center")
        if reference is not None:
            ax.axvline(reference, color=PALETTE["black"], linewidth=1, linestyle=":")
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, max(s.high for s in values.values()) * 1.25)
    return fig


def recycling_plot(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """Each worker's resident memory after each task it ran; one panel per setting."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 4.2), layout="constrained")
        axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
        for ax, (label, rows) in zip(axes, runs.items(), strict=True):
            pids = list(dict.fromkeys(r["pid"] for r in rows))
            for i, pid in enumerate(pids):
                mine = [r for r in rows if r["pid"] == pid]
                ax.plot([r["task"] for r in mine], [r["rss_mib"] for r in mine], marker="o",
                        markersize=3, color=CYCLE[i % len(CYCLE)])
            ax.set_title(f"{label}\n{len(pids)} worker process(es) over the run", fontsize=12)
            ax.set_xlabel("task number")
        axes[0].set_ylabel("worker memory (RSS, MiB)")
        fig.suptitle("A task that leaks: one line per worker process")
    return fig


def backpressure_plot(runs: Sequence[Mapping[str, Any]]) -> Figure:
    """Unfinished tasks and the parent's memory over time, unbounded against bounded."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 4.2), layout="constrained")
        depth, memory = fig.subplots(1, 2)
        for i, run in enumerate(runs):
            label = "bounded (semaphore)" if run["bounded"] else "unbounded submit"
            t = [s["t"] for s in run["samples"]]
            depth.plot(t, [s["unfinished"] for s in run["samples"]], color=CYCLE[i],
                       label=label)
            memory.plot(t, [s["rss_mib"] - run["baseline_rss_mib"] for s in run["samples"]],
                        color=CYCLE[i], label=label)
            for ax in (depth, memory):
                ax.axvline(run["producer_done_after"], color=CYCLE[i], linestyle=":",
                           linewidth=1)
        depth.set_ylabel("tasks submitted, not finished")
        memory.set_ylabel("parent's extra memory (MiB)")
        for ax in (depth, memory):
            ax.set_xlabel("seconds (dotted: producer done)")
        depth.legend()
        fig.suptitle("A fast producer, slow workers: where do the waiting tasks live?")
    return fig


def decision_chart(model: advisor.CostModel, cpus: int, tasks: int = 1000,
                   cases: Sequence[Mapping[str, Any]] = ()) -> Figure:
    """The model's advice over task size × payload size, for GIL-holding and -releasing work.

    Colour: the advised choice; contours: its predicted speedup. ``cases`` (with
    ``task_seconds``, ``payload_bytes``, ``gil_releasing``, ``label``) are marked.
    """
    gil = machine.gil_enabled()  # what advise() reads below, at the same moment
    task_sizes = np.logspace(-5, 0, 60)  # 10 µs .. 1 s
    payloads = np.concatenate([[0], np.logspace(2, 8, 50)])  # 0, 100 B .. 100 MB
    colours = ListedColormap([PALETTE["sky"], PALETTE["orange"], PALETTE["blue"]])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.8), layout="constrained")
        axes = fig.subplots(1, 2, sharey=True)
        for ax, releasing in zip(axes, (False, True), strict=True):
            choice = np.zeros((len(payloads), len(task_sizes)))
            speed = np.zeros_like(choice)
            for i, payload in enumerate(payloads):
                for j, seconds in enumerate(task_sizes):
                    advice = advisor.advise(float(seconds), payload_bytes=int(payload),
                                            cpus=cpus, gil_releasing=releasing, tasks=tasks,
                                            model=model)
                    choice[i, j] = advisor.CHOICES.index(advice.choice)
                    speed[i, j] = advice.predicted_speedup
            y = np.maximum(payloads, 10)  # draw "no payload" at the bottom of the log axis
            ax.pcolormesh(task_sizes, y, choice, cmap=colours, vmin=-0.5, vmax=2.5,
                          shading="nearest")
            if cpus > 1:
                levels = [lv for lv in (1.3, 0.5 * cpus, 0.9 * cpus) if lv > 1]
                lines = ax.contour(task_sizes, y, speed, levels=sorted(set(levels)),
                                   colors=PALETTE["black"], linewidths=1)
                ax.clabel(lines, fmt=lambda v: f"{v:.1f}×", fontsize=10)
            for case in cases:
                if case["gil_releasing"] == releasing:
                    ax.plot(case["task_seconds"], max(case["payload_bytes"], 10), marker="*",
                            markersize=14, color=PALETTE["vermillion"],
                            markeredgecolor="white")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("work per task (seconds)")
            ax.set_title(_panel_title(releasing, gil), fontsize=12)
        axes[0].set_ylabel("payload per task (bytes; bottom row: none)")
        handles = [matplotlib.patches.Patch(color=c, label=n)
                   for c, n in zip(colours.colors, advisor.CHOICES, strict=True)]
        fig.legend(handles=handles, loc="outside right upper", title="advice")
        fig.suptitle(f"A model's advice: {tasks} tasks on {cpus} CPUs\n"
                     "contours: predicted speedup; stars: the cases measured above",
                     fontsize=13)
    return fig


def _panel_title(releasing: bool, gil_enabled: bool) -> str:
    """A decision-chart panel's title, true on this kernel (no GIL: both panels agree)."""
    if releasing:
        return "work releases the GIL"
    if gil_enabled:
        return "pure Python (holds the GIL)"
    return "pure Python (GIL off on this kernel)"


def money_plot(model: advisor.CostModel, measured: Mapping[str, Mapping[int, Spread]],
               task_sizes: Sequence[float] = (0.0001, 0.001, 0.03), tasks: int = 10_000,
               top: int = 64) -> Figure:
    """Cores paid for against speedup obtained: the model's lines, measured points beside."""
    cores = np.unique(np.round(np.logspace(0, math.log2(top), 30, base=2)).astype(int))
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        speed_ax, share_ax = fig.subplots(1, 2)
        for i, seconds in enumerate(task_sizes):
            values = [advisor.speedup_for_cores(seconds, int(c), tasks, model) for c in cores]
            label = f"model: {tasks} tasks of {seconds * 1000:g} ms"
            speed_ax.plot(cores, values, color=CYCLE[i], linestyle="--", label=label)
            share_ax.plot(cores, [v / c for v, c in zip(values, cores, strict=True)],
                          color=CYCLE[i], linestyle="--", label=label)
        markers = iter("osD^v")
        for name, points in measured.items():
            xs = sorted(points)
            marker = next(markers, "o")
            speed_ax.errorbar(xs, [points[x].median for x in xs],
                              yerr=[[points[x].median - points[x].low for x in xs],
                                    [points[x].high - points[x].median for x in xs]],
                              fmt=marker, color=PALETTE["black"], capsize=3, label=name)
            share_ax.plot(xs, [points[x].median / x for x in xs], marker, color=PALETTE["black"],
                          label=name)
        speed_ax.plot(cores, cores, color="grey", linewidth=1, label="ideal")
        speed_ax.set_xscale("log", base=2)
        speed_ax.set_yscale("log", base=2)
        speed_ax.set_xlabel("cores paid for")
        speed_ax.set_ylabel("speedup obtained")
        share_ax.set_xscale("log", base=2)
        share_ax.set_ylim(0, 1.05)
        share_ax.set_xlabel("cores paid for")
        share_ax.set_ylabel("share of each paid core that does work")
        share_ax.legend(fontsize=9, loc="lower left")
        fig.suptitle("The money side: what each extra core buys (dashed: model; "
                     "black: measured reference machines)")
    return fig
