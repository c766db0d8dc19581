"""Your benchmark beside the reference machines (notebook 10).

::

    data/reference/course-*.json ──load_references(mode)──┐
                                                           ├─> speedup_comparison_plot
    CourseBenchmark(...).document() (your run) ────────────┤   task_size_plot
                                                           │   overhead_comparison_plot
    diagnosis.why_no_speedup(your run) ────────────────────┴─> summary_page (Markdown)

Like is compared with like: a quick-mode run is drawn next to quick-mode references,
and a full run next to full ones. Every summary is recomputed from the records, so a
reference file keeps working when the summary grows. Documents stay plain JSON data;
each function below reads ``document["summary"]`` once into a typed
:class:`~helpers.bench.schema.Summary` and reads its attributes.

Every sentence about a reference machine is written here, from its file
(:func:`explain_reference_scaling`, :func:`explain_reference_task_size`): no notebook
or document types a reference machine's number in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.figure import Figure

from helpers.bench import diagnosis, suite
from helpers.bench.schema import Range, SpeedupPoint, Summary, TaskSizeTable
from helpers.core import measure, paths
from helpers.core.measure import Spread
from helpers.view.plots import CYCLE, PALETTE, STYLE

if TYPE_CHECKING:
    from helpers.experiments.strong_scaling import ScalingResult

REFERENCE_DIR = paths.REFERENCE_DIR
EXECUTOR_COLOURS = {"WorkerPool": PALETTE["blue"], "ProcessPoolExecutor": PALETTE["orange"],
                    "joblib": PALETTE["green"], "threads": PALETTE["vermillion"],
                    "multiprocessing.Pool": PALETTE["purple"]}
REFERENCE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))


def with_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its summary recomputed from its records."""
    records = measure.records_of(document)
    return {**document, "summary": suite.summarize(records, document["machine"]).to_json()}


def label(document: dict[str, Any]) -> str:
    """A short name for the machine a result came from."""
    card = document["machine"]
    build = " free-threaded" if card.get("free_threaded_build") else ""
    return (f"{card['cpu_model']}, {card['usable_cpus']} CPUs, Python {card['python']}{build} "
            f"({document.get('created', '')[:10]})")


def load_references(mode: str | None = None,
                    directory: Path | str = REFERENCE_DIR) -> list[dict[str, Any]]:
    """Every course-benchmark result in ``directory`` (of ``mode`` only, if given)."""
    documents = []
    for path in sorted(Path(directory).glob("*.json")):
        document = json.loads(path.read_text())
        if document.get("kind") != suite.KIND:
            continue
        if mode is None or document.get("mode") == mode:
            documents.append({**with_summary(document), "file": path.name})
    return documents


def comparable(mine: dict[str, Any], directory: Path | str = REFERENCE_DIR
               ) -> tuple[list[dict[str, Any]], str]:
    """The references to draw beside ``mine`` (same mode), and a sentence saying which."""
    same = load_references(mine["mode"], directory)
    every = load_references(None, directory)
    if same:
        names = "; ".join(f"{d['file']} ({label(d)})" for d in same)
        note = f"Reference machines ({mine['mode']} mode, like yours): {names}."
        older = [d["file"] for d in same if suite.plan_comparable(d) is not None
                 and suite.plan_comparable(mine) is None]
        if older:
            note += (f" Recorded with an older plan, so not quite like for like: "
                     f"{', '.join(older)} ({suite.plan_comparable({'plan': {}})}).")
        return same, note
    if every:
        return [], (f"There are references, but none in {mine['mode']} mode: "
                    f"{', '.join(d['file'] for d in every)}. Runs of different modes use "
                    "different task sizes, so they are not drawn side by side.")
    return [], "No reference results found in data/reference/."


def reference_speedups(workload: str = "python", executor: str = "ProcessPoolExecutor",
                       directory: Path | str = REFERENCE_DIR, *, mode: str | None = "full"
                       ) -> dict[str, dict[int, Spread]]:
    """Each reference machine's measured speedup over *one worker of the same executor*
    ({label: {workers: Spread}}), to draw beside a scaling sweep (notebooks 00 and 03).

    Only references of ``mode`` are drawn (None: every mode): a sweep passes its own
    (``mode=result.mode``) so that like is drawn with like. The label names the
    reference's mode and job, which differ from the sweep's (see
    :func:`explain_reference_scaling`).
    """
    curves = {}
    for document in load_references(mode, directory):
        found = reference_scaling(document, workload, executor, baseline="one worker")
        if found is not None and len(found.speedups) > 1:
            curves[f"reference: {found.short_label}"] = found.speedups
    return curves


# --- what a reference file's scaling sweep can and cannot say ---

#: What a reference speedup is measured against: the benchmark's serial loop (what
#: notebook 10 draws) or one worker of the same executor (what a sweep in 00 and 03 draws).
BASELINES = ("serial", "one worker")
#: A shortfall from the ideal (1 - speedup / workers) that a plot shows as a bend.
VISIBLE_BEND = 0.2


@dataclass(frozen=True)
class ReferenceScaling:
    """One executor's scaling sweep in one reference file, and how far its spread lets
    one read it.

    ``speedups`` are paired by repeat (each run over the baseline's run of the same
    repeat); ``baseline_seconds`` is the spread of the baseline's own run time. By the
    course's rule, a bend smaller than that spread is reported as noise, not explained.
    """

    file: str
    machine: dict[str, Any]
    mode: str
    workload: str
    executor: str
    baseline: str
    tasks: int
    task_seconds: float
    baseline_seconds: Spread
    speedups: dict[int, Spread]

    @property
    def workers(self) -> int:
        """The largest worker count measured."""
        return max(self.speedups)

    @property
    def top(self) -> Spread:
        """The speedup at the largest worker count."""
        return self.speedups[self.workers]

    @property
    def tasks_per_worker(self) -> float:
        return self.tasks / self.workers

    @property
    def short_label(self) -> str:
        """The machine, its mode and its job, short enough for a legend."""
        return (f"{short_cpu(self.machine['cpu_model'])}, {self.machine['usable_cpus']} CPUs "
                f"({self.mode}: {self.tasks} × {self.task_seconds * 1000:.2g} ms tasks)")

    @property
    def shortfall(self) -> float:
        """How far below the ideal the largest worker count landed: 1 - speedup / workers."""
        return 1 - self.top.median / self.workers

    @property
    def baseline_spread(self) -> float:
        """(slowest - fastest) / median of the baseline's run time."""
        return self.baseline_seconds.relative_spread

    @property
    def noisy(self) -> bool:
        """True when the baseline's own spread is larger than the shortfall it would explain."""
        return self.baseline_spread > self.shortfall

    def karp_flatt(self) -> dict[int, float]:
        """The serial fraction each median speedup implies, per worker count above one."""
        return {p: measure.karp_flatt(s.median, p) for p, s in self.speedups.items() if p > 1}

    def karp_flatt_trend(self) -> str | None:
        """``"falls"``, ``"rises"`` or ``"level"`` from the fewest to the most workers; None
        with fewer than two worker counts above one. Changes under a quarter of the
        larger estimate (or 0.01) count as level."""
        estimates = list(self.karp_flatt().values())
        if len(estimates) < 2:
            return None
        first, last = estimates[0], estimates[-1]
        tolerance = max(0.01, 0.25 * max(abs(first), abs(last)))
        if last < first - tolerance:
            return "falls"
        if last > first + tolerance:
            return "rises"
        return "level"


def short_cpu(model: str) -> str:
    """``Intel(R) Xeon(R) Processor`` -> ``Intel Xeon``: a CPU model without its marks."""
    for noise in ("(R)", "(TM)", "(tm)", " Processor", " CPU"):
        model = model.replace(noise, "")
    return " ".join(model.split())


def reference_scaling(document: dict[str, Any], workload: str = "python",
                      executor: str = "ProcessPoolExecutor", baseline: str = "serial"
                      ) -> ReferenceScaling | None:
    """One executor's scaling sweep in ``document``, over ``baseline`` (see
    :data:`BASELINES`); None if the file has no such sweep."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline {baseline!r} is not one of: {', '.join(BASELINES)}")
    records = [r for r in measure.records_of(document)
               if r.experiment == "scaling" and r.workload == workload]
    runs = [r for r in records if r.executor == executor]
    base = ([r for r in records if r.executor == "serial"] if baseline == "serial"
            else [r for r in runs if r.workers == 1])
    if not runs or not base:
        return None
    triples = [(r.repeat, "baseline", r.seconds) for r in base]
    triples += [(r.repeat, r.workers, r.seconds) for r in runs]
    ratios = measure.paired_speedups(triples, baseline="baseline")
    ratios.pop("baseline")
    if not ratios:
        return None
    return ReferenceScaling(
        file=document.get("file", ""), machine=document["machine"], mode=document["mode"],
        workload=workload, executor=executor, baseline=baseline, tasks=runs[0].tasks,
        task_seconds=runs[0].task_seconds,
        baseline_seconds=measure.spread(r.seconds for r in base),
        speedups={p: measure.spread(values) for p, values in sorted(ratios.items())})


def references_like(mode: str, directory: Path | str = REFERENCE_DIR
                    ) -> tuple[list[dict[str, Any]], str]:
    """The references of ``mode``, most CPUs first, and a note; every reference, with a
    note saying so, when none is of that mode."""
    same = load_references(mode, directory)
    if same:
        return _most_cpus_first(same), ""
    every = load_references(None, directory)
    if not every:
        return [], "No reference results found in `data/reference/`."
    return _most_cpus_first(every), (
        f"There is no reference in {mode} mode; the ones below ran in another mode, a "
        "different job, so read them as other machines' results, not as a comparison.")


def _most_cpus_first(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(documents, key=lambda d: (-d["machine"]["usable_cpus"], d["file"]))


def _machine_words(document: dict[str, Any]) -> str:
    """**CPU model, N CPUs** (a virtual machine; Python x, GIL on; `file`, mode)."""
    card = document["machine"]
    where = [w for w in ("a virtual machine" if card.get("virtualisation") else "",
                         f"in a {card['container']} container" if card.get("container")
                         else "") if w]
    gil = "GIL off" if card.get("gil_enabled") is False else "GIL on"
    build = " free-threaded" if card.get("free_threaded_build") else ""
    return (f"**{card['cpu_model']}, {card['usable_cpus']} CPUs** ("
            + (", ".join(where) + "; " if where else "")
            + f"Python {card['python']}{build}, {gil}; `{document['file']}`, "
            f"{document['mode']} mode)")


def _over(baseline: str) -> str:
    return "than the serial loop" if baseline == "serial" else "than on one worker"


def explain_reference_scaling(mode: str, workload: str = "python",
                              executor: str = "ProcessPoolExecutor", baseline: str = "one worker",
                              mine: ScalingResult | None = None,
                              directory: Path | str = REFERENCE_DIR) -> str:
    """What each reference machine of ``mode`` measured in its scaling sweep, in Markdown,
    with how far its own spread lets one read the curve's bend.

    ``baseline`` is the one the plot beside it uses (``"one worker"`` for a sweep in
    notebooks 00 and 03, ``"serial"`` for notebook 10). Give ``mine`` (a scaling sweep) to
    say how its job differs from the references'.
    """
    documents, note = references_like(mode, directory)
    lines = [note] if note else []
    for document in documents:
        found = reference_scaling(document, workload, executor, baseline)
        if found is None or len(found.speedups) < 2:
            continue
        lines.append(f"- {_machine_words(document)}: {_job_words(found)}. "
                     + _speedup_words(document, found))
        if found.workers > 1:
            lines.append(f"  - *How far this file can be read:* {_noise_words(found)}")
    if mine is not None and len(lines) > bool(note):
        top = max(mine.workers)
        lines.append(f"\nYour sweep ran {mine.tasks} tasks of {mine.task_seconds * 1000:.2g} ms "
                     f"({mine.tasks / top:.3g} per worker at {top} workers), in {mine.mode} mode: "
                     "a different job from the references', so compare the shapes of the "
                     "curves, not their numbers.")
    return "\n".join(lines) or "No reference machine has a scaling sweep to show."


def _job_words(found: ReferenceScaling) -> str:
    return (f"{found.tasks} {'pure-Python ' if found.workload == 'python' else ''}tasks of "
            f"{found.task_seconds * 1000:.2g} ms, {found.tasks_per_worker:.3g} per worker at "
            f"{found.workers} workers")


def _speedup_words(document: dict[str, Any], found: ReferenceScaling) -> str:
    """The executor's speedup at the most workers, the other pools' and the threads'."""
    top = found.top
    words = (f"{found.executor} ran **{top.median:.2f}×** faster on {found.workers} workers "
             f"{_over(found.baseline)} (range {top.low:.2f}–{top.high:.2f}× "
             f"over {top.count} repeats): {top.median / found.workers:.0%} of the ideal "
             f"{found.workers}×")
    others = []
    for name in ("WorkerPool", "ProcessPoolExecutor", "joblib"):
        other = reference_scaling(document, found.workload, name, found.baseline)
        if name != found.executor and other is not None and other.workers == found.workers:
            others.append(f"{name} {other.top.median:.2f}×")
    if others:
        words += "; " + ", ".join(others) + (
            " (each over one worker of its own)" if found.baseline == "one worker" else "")
    threads = reference_scaling(document, found.workload, "threads", found.baseline)
    if threads is not None and len(threads.speedups) > 1:
        words += (f". {threads.workers} threads: {threads.top.median:.2f}× on this "
                  f"{'pure-Python ' if found.workload == 'python' else ''}work")
    released = reference_scaling(document, "sha256", "threads", found.baseline)
    if found.workload != "sha256" and released is not None and len(released.speedups) > 1:
        words += (f", against {released.top.median:.2f}× for sha256 (hashlib releases the GIL)"
                  f" on {released.workers} threads")
    return words + "."


def _noise_words(found: ReferenceScaling) -> str:
    """The baseline's spread against the shortfall, the Karp–Flatt trend, and what that allows."""
    base = found.baseline_seconds
    subject = "The serial loop" if found.baseline == "serial" else "One worker alone"
    words = [f"{subject} took {base.low:#.3g}–{base.high:#.3g} s over {base.count} repeats, a "
             f"spread of {found.baseline_spread:.0%} of its median, "
             + ("larger" if found.noisy else "smaller")
             + f" than the {found.shortfall:.0%} by which {found.workers} workers fell short of "
             f"{found.workers}×."]
    if found.noisy:
        words.append("By the course's rule a spread larger than the effect is reported, not "
                     + (f"explained: the shortfall at {found.workers} workers is within this "
                        "file's noise, so it cannot say where, or why, the curve bends."
                        if found.workers > 2 else f"explained: at {found.workers} workers "
                        "this file cannot tell the shortfall from noise."))
    series = ", ".join(f"{e:.3f} at {p}" for p, e in found.karp_flatt().items())
    trend = found.karp_flatt_trend()
    if trend is None:
        words.append(f"With one parallel point the Karp–Flatt serial fraction ({series} "
                     "workers) is a single estimate: no trend to read.")
    elif trend == "falls":
        words.append(f"The Karp–Flatt serial fraction *falls* as workers are added ({series} "
                     "workers). A fixed serial part would keep it level and a cost that grows "
                     "with the workers would make it rise; a falling one is the signature of "
                     "a slow baseline or slow small counts, not a measure of what limits the "
                     "large ones.")
    elif trend == "rises":
        words.append(f"The Karp–Flatt serial fraction *rises* as workers are added ({series} "
                     "workers): "
                     + ("were the baseline steady, that would point to" if found.noisy
                        else "the sign of")
                     + " a cost that grows with the workers (handing out tasks, collecting "
                     "results, the last task finishing alone), which Amdahl's single fraction "
                     "does not describe.")
    else:
        words.append(f"The Karp–Flatt serial fraction stays level ({series} workers), as a "
                     "fixed serial part would keep it: Amdahl's law describes this curve.")
    if found.workload == "python" and found.workers > 2 and found.shortfall >= VISIBLE_BEND:
        words.append("Whatever bends it, it is not shared caches or memory bandwidth: the "
                     "loop works on a few integers, which stay in each core's own cache.")
    return " ".join(words)


def explain_reference_task_size(mode: str, executor: str = "ProcessPoolExecutor",
                                directory: Path | str = REFERENCE_DIR) -> str:
    """Each reference machine's efficiency by task size (one submit per task), in Markdown."""
    documents, note = references_like(mode, directory)
    lines = [note] if note else []
    for document in documents:
        table = Summary.from_json(document["summary"]).task_size
        points = table.efficiency.get(executor, {})
        if not points:
            continue
        sizes = sorted({min(points), *(ms for ms in points if ms == 1.0), max(points)})
        cells = []
        for ms in sizes:
            low, high = table.range.get(executor, {}).get(ms, (points[ms], points[ms]))
            cells.append(f"{points[ms]:.0%} with {ms:g} ms tasks (range {low:.0%}–{high:.0%})")
        batched = table.efficiency.get("WorkerPool", {})
        shortest = table.break_even_ms(executor)
        lines.append(
            f"- {_machine_words(document)}, {table.workers} workers: {executor} kept "
            + ", ".join(cells)
            + ("; WorkerPool, which batches tiny tasks itself, "
               + ", ".join(f"{batched[ms]:.0%} at {ms:g} ms" for ms in sizes if ms in batched)
               if batched else "")
            + ". Shortest task reaching 80 %: "
            + (f"{shortest:g} ms." if shortest is not None else "none measured."))
    return "\n".join(lines) or "No reference machine has a task-size part to show."


# --- the plots ---


def speedup_comparison_plot(mine: dict[str, Any], references: Sequence[dict[str, Any]] = ()
                            ) -> Figure:
    """Speedup over serial against workers, per workload: yours solid, references dashed."""
    yours = Summary.from_json(mine["summary"])
    sources = [(yours, "-", 1.0)] + [
        (Summary.from_json(ref["summary"]), REFERENCE_STYLES[i % len(REFERENCE_STYLES)], 0.6)
        for i, ref in enumerate(references)]
    workloads = list(yours.speedup) or list(suite.SCALING_WORKLOADS)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6 * len(workloads), 4.8), layout="constrained")
        axes = fig.subplots(1, len(workloads), squeeze=False)[0]
        for ax, workload in zip(axes, workloads, strict=True):
            top = 1
            for summary, style, alpha in sources:
                for executor, points in summary.speedup.get(workload, {}).items():
                    xs = sorted(points)
                    medians = [points[x].median for x in xs]
                    errors = [[points[x].median - points[x].low for x in xs],
                              [points[x].high - points[x].median for x in xs]]
                    ax.errorbar(xs, medians, yerr=errors, linestyle=style, marker="o",
                                color=EXECUTOR_COLOURS.get(executor, CYCLE[0]), alpha=alpha,
                                capsize=3, label=executor if summary is yours else None)
                    top = max(top, *xs)
            ax.plot([1, top], [1, top], color="grey", linewidth=1, label="ideal (= workers)")
            if top > 8:
                ax.set_xscale("log", base=2)
                ax.set_yscale("log", base=2)
            counts = sorted({p for summary, _, _ in sources
                             for points in summary.speedup.get(workload, {}).values()
                             for p in points})
            ax.set_xticks(counts, [str(c) for c in counts])
            ax.set_xlabel("workers")
            ax.set_ylabel("speedup over serial (median, min–max)")
            ax.set_title(f"{workload} workload")
        axes[0].legend(loc="upper left", title="solid: your machine")
        if references:
            fig.suptitle("Dashed/dotted: " + "; ".join(label(r) for r in references),
                         fontsize=10)
    return fig


def task_size_plot(mine: dict[str, Any], references: Sequence[dict[str, Any]] = ()) -> Figure:
    """Efficiency against task duration, with the region where processes lose shaded."""
    yours = Summary.from_json(mine["summary"]).task_size
    sources = [(yours, "-", 1.0)] + [
        (Summary.from_json(ref["summary"]).task_size,
         REFERENCE_STYLES[i % len(REFERENCE_STYLES)], 0.6) for i, ref in enumerate(references)]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(9, 4.8), layout="constrained")
        ax = fig.subplots()
        for table, style, alpha in sources:
            for executor, points in table.efficiency.items():
                xs = sorted(points)
                ranges = table.range.get(executor, {})  # none in the oldest files
                errors = [[points[x] - ranges.get(x, (points[x], points[x]))[0] for x in xs],
                          [ranges.get(x, (points[x], points[x]))[1] - points[x] for x in xs]]
                ax.errorbar(xs, [points[x] for x in xs], yerr=errors,
                            linestyle=style, marker="o", capsize=3, alpha=alpha,
                            color=EXECUTOR_COLOURS.get(executor, CYCLE[0]),
                            label=f"{executor} (one submit per task)" if table is yours
                            else None)
        workers = yours.workers or 1
        ax.set_xscale("log")
        sizes = sorted({ms for points in yours.efficiency.values() for ms in points})
        ax.set_xticks(sizes, [f"{ms:g}" for ms in sizes])
        ax.minorticks_off()
        ax.axhline(0.8, color="grey", linewidth=1, linestyle="--")
        ax.annotate("80 % efficiency", (ax.get_xlim()[0], 0.8), va="bottom", fontsize=10)
        if workers > 1:
            ax.axhspan(0, 1 / workers, color=PALETTE["vermillion"], alpha=0.12)
            ax.annotate(f"slower than serial (efficiency < 1/{workers})",
                        (ax.get_xlim()[0], 1 / workers), va="top", fontsize=10)
        ax.set_ylim(0, 1.15)
        ax.set_xlabel("task duration (ms, log scale)")
        ax.set_ylabel(f"efficiency on {workers} workers\n(median, min–max)")
        ax.set_title("How short can a task be before the overhead eats the speedup?")
        ax.legend(loc="lower right", title="solid: your machine", fontsize=10)
    return fig


def overhead_comparison_plot(mine: dict[str, Any], references: Sequence[dict[str, Any]] = ()
                             ) -> Figure:
    """Per-task overhead per pool, and time to first result per start method, per machine."""
    summaries = [Summary.from_json(d["summary"]) for d in (mine, *references)]
    names = ["yours"] + [f"ref {i + 1}" for i in range(len(references))]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(12, 4.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        _grouped_bars(left, names, [s.overhead_seconds_per_task for s in summaries],
                      [s.overhead_range for s in summaries],
                      1e6, "µs per tiny task (median, min–max)", "one submit per tiny task")
        first = [{method: pools.get("WorkerPool", min(pools.values())) for method, pools
                  in s.first_result_seconds.items()} for s in summaries]
        first_ranges = [{method: pools["WorkerPool"] for method, pools
                         in s.first_result_range.items() if "WorkerPool" in pools}
                        for s in summaries]
        _grouped_bars(right, names, first, first_ranges, 1e3, "ms (median, min–max)",
                      "a fresh WorkerPool's first result, per start method")
    return fig


def _grouped_bars(ax: Any, machines: list[str], values: list[dict[str, float]],
                  ranges: list[dict[str, Range]], scale: float, ylabel: str,
                  title: str) -> None:
    keys = sorted({k for v in values for k in v})
    if not keys:
        ax.set_visible(False)
        return
    width = 0.8 / len(machines)
    for i, (name, row) in enumerate(zip(machines, values, strict=True)):
        xs = [k + i * width for k in range(len(keys))]
        heights = [row.get(key, float("nan")) * scale for key in keys]
        spans = [ranges[i].get(key) or (row.get(key, float("nan")),) * 2 for key in keys]
        errors = [[h - low * scale for h, (low, _) in zip(heights, spans, strict=True)],
                  [high * scale - h for h, (_, high) in zip(heights, spans, strict=True)]]
        ax.bar(xs, heights, width=width, yerr=errors, capsize=4, color=CYCLE[i % len(CYCLE)],
               label=name, alpha=1.0 if i == 0 else 0.7)
        for x, h, (_, high) in zip(xs, heights, spans, strict=True):
            if h == h:  # not NaN
                ax.annotate(f"{h:.3g}", (x, high * scale), ha="center", va="bottom", fontsize=9)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))],
                  [k.replace("ProcessPoolExecutor", "ProcessPool\nExecutor")
                   .replace("multiprocessing.Pool", "mp.Pool") for k in keys], fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=12)
    ax.legend(fontsize=10)


# --- explanations that quote the learner's own numbers ---


def explain_scaling(mine: dict[str, Any], references: Sequence[dict[str, Any]] = ()) -> str:
    """What the speedup plot shows, in Markdown, with this run's numbers (and a model)."""
    summary = Summary.from_json(mine["summary"])
    processes = summary.best("python", "WorkerPool")
    if processes is None:
        return "Run the scaling part first."
    workers, speedup = processes
    lines = []
    others = ", ".join(f"{name} {point[1]:.2f}×" for name in ("ProcessPoolExecutor", "joblib")
                       if (point := summary.best("python", name)) is not None)
    threads, released = summary.best("python", "threads"), summary.best("sha256", "threads")
    lines.append(f"- **Pure Python on {workers} processes:** WorkerPool {speedup:.2f}× "
                 f"({speedup / workers:.0%} of the ideal {workers}×); {others}.")
    if threads is not None:
        lines.append(f"- **Pure Python on {threads[0]} threads:** {threads[1]:.2f}×"
                     + (" — the GIL lets one thread run Python at a time." if threads[1] < 1.3
                        and threads[0] > 1 else "."))
    if released is not None:
        lines.append(f"- **sha256 on {released[0]} threads:** {released[1]:.2f}× — hashlib "
                     "releases the GIL while it hashes, so threads do run in parallel.")
    spread = summary.speedup["python"]["WorkerPool"][workers]
    if spread.high - spread.low > abs(speedup - 1):
        lines.append(f"- The spread over repeats ({spread.low:.2f}–{spread.high:.2f}×) is "
                     "larger than the effect: treat these numbers as noise and run again.")
    if workers >= 2:
        serial = measure.karp_flatt(speedup, workers)
        shown = max(0.0, serial)
        model = ", ".join(f"{p} CPUs ≈ {measure.amdahl_speedup(p, shown):.1f}×"
                          for p in (8, 16, 64))
        caveat = (" From one parallel point this is an estimate, not a fit: the line it draws "
                  "could bend sooner or later on a real machine." if workers == 2 else "")
        lines.append(f"- **A model, not a measurement:** your speedup implies a serial "
                     f"fraction (Karp–Flatt) of {serial:.3f}. Amdahl's law would then predict "
                     f"{model}.{caveat}")
    for ref in references:
        point = Summary.from_json(ref["summary"]).best("python", "WorkerPool")
        if point is not None:
            lines.append(f"- **Reference** {label(ref)}: WorkerPool {point[1]:.2f}× on "
                         f"{point[0]} workers.")
    return "\n".join(lines)


def explain_task_size(mine: dict[str, Any]) -> str:
    """What the task-size plot shows, with this run's numbers."""
    summary = Summary.from_json(mine["summary"])
    table = summary.task_size
    ppe = table.efficiency.get("ProcessPoolExecutor", {})
    if not ppe:
        return "Run the task-size part first."
    sizes = sorted(ppe)
    small, large = sizes[0], sizes[-1]
    batched = table.efficiency.get("WorkerPool", {})
    overhead = summary.overhead_seconds_per_task.get("ProcessPoolExecutor")
    shortest = table.break_even_ms()
    lines = [f"- With {small:g} ms tasks, ProcessPoolExecutor kept {ppe[small]:.0%} of "
             f"{table.workers} workers busy with your work; with {large:g} ms tasks, "
             f"{ppe[large]:.0%}."]
    if overhead is not None:
        lines.append(f"- Each submit costs about {overhead * 1e6:.0f} µs of pickling, queueing "
                     f"and waking a worker: {overhead / (small / 1000):.0%} of a "
                     f"{small:g} ms task.")
    if small in batched:
        lines.append(f"- WorkerPool batches small tasks itself: {batched[small]:.0%} at "
                     f"{small:g} ms.")
    lines.append(f"- Shortest task reaching 80 %: "
                 f"{f'{shortest:g} ms' if shortest is not None else 'none measured'}. "
                 "Below it, batch (`chunksize`) or merge tasks.")
    return "\n".join(lines)


def explain_costs(mine: dict[str, Any]) -> str:
    """Per-task overhead, start-up per start method, the event loop and BLAS, in numbers."""
    summary = Summary.from_json(mine["summary"])
    lines = []
    if summary.overhead_seconds_per_task:
        lines.append("- **One tiny task, one submit:** " + ", ".join(
            f"{k} {v * 1e6:.1f} µs" for k, v in summary.overhead_seconds_per_task.items())
            + ".")
    first = {m: min(p.values()) for m, p in summary.first_result_seconds.items()}
    if first:
        lines.append("- **A fresh pool's first result:** " + ", ".join(
            f"{m} {s * 1000:.0f} ms" for m, s in first.items())
            + ". Fork copies this process; spawn starts and imports a new interpreter; "
            "forkserver forks from a small server process started once.")
    lag = summary.loop_max_lag_seconds
    if {"inline", "WorkerPool"} <= set(lag):
        lines.append(f"- **Event loop:** CPU work inline froze the loop for up to "
                     f"{lag['inline'] * 1000:.0f} ms; offloaded to a WorkerPool, "
                     f"{lag['WorkerPool'] * 1000:.0f} ms.")
    if summary.blas is not None:
        lines.append("- **NumPy in processes:** " + ", ".join(
            f"{k} {v:.2f} s" for k, v in summary.blas.seconds.items())
            + f" — oversubscribed BLAS threads cost "
            f"{summary.blas.oversubscription_slowdown:.2f}×.")
    for part, reason in mine.get("skipped", {}).items():
        lines.append(f"- **{part}:** skipped, because {reason}.")
    return "\n".join(lines) or "Run the overhead, start-methods, event-loop and blas parts first."


# --- the page to keep ---


def break_even_ms(document: dict[str, Any], executor: str = "ProcessPoolExecutor",
                  efficiency: float = 0.8) -> float | None:
    """The shortest measured task (ms) that reached ``efficiency``; None if none did."""
    return Summary.from_json(document["summary"]).task_size.break_even_ms(executor, efficiency)


def summary_page(document: dict[str, Any], findings: Sequence[diagnosis.Finding] | None = None
                 ) -> str:
    """One page of Markdown: this machine's numbers, the diagnosis, the decision guide."""
    card, summary = document["machine"], Summary.from_json(document["summary"])
    findings = diagnosis.why_no_speedup(document) if findings is None else findings
    rows = []
    if (best := summary.best("python", "WorkerPool")) is not None:
        rows.append(("pure Python on processes (WorkerPool)",
                     f"{best[1]:.2f}× on {best[0]} workers ({best[1] / best[0]:.0%} efficiency)"))
    if (threads := summary.best("python", "threads")) is not None:
        rows.append(("pure Python on threads", f"{threads[1]:.2f}× on {threads[0]} threads"))
    if (released := summary.best("sha256", "threads")) is not None:
        rows.append(("GIL-releasing sha256 on threads",
                     f"{released[1]:.2f}× on {released[0]} threads"))
    overhead = summary.overhead_seconds_per_task
    if overhead:
        rows.append(("cost of one tiny task", ", ".join(
            f"{k} {v * 1e6:.0f} µs" for k, v in overhead.items())))
    shortest = summary.task_size.break_even_ms()
    if summary.task_size.efficiency:
        rows.append(("shortest task reaching 80 % efficiency (ProcessPoolExecutor)",
                     f"{shortest:g} ms" if shortest is not None else "none measured"))
    lag = summary.loop_max_lag_seconds
    if lag:
        rows.append(("worst event-loop lag, CPU work inline / offloaded",
                     " / ".join(f"{v * 1000:.0f} ms" for v in lag.values())))
    for method, pools in summary.first_result_seconds.items():
        rows.append((f"first result of a new pool ({method})",
                     f"{min(pools.values()) * 1000:.0f} ms"))
    if summary.blas is not None:
        rows.append(("BLAS threads × processes (oversubscribed) vs one BLAS thread each",
                     f"{summary.blas.oversubscription_slowdown:.2f}× slower"))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    usable = card["usable_cpus"]
    guide = _decision_guide(usable, shortest, card)
    ranked = diagnosis.diagnosis_markdown(list(findings)[:4])
    return (f"## Your machine in one page\n\n"
            f"**{card['cpu_model']}** · {usable} usable of {card['logical_cpus']} CPUs · "
            f"Python {card['python']} ({'GIL off' if not card['gil_enabled'] else 'GIL on'}) · "
            f"start method {summary.start_method or card['start_method']} · "
            f"{document['mode']} mode · {document.get('created', '')[:16]}\n\n"
            f"| measured | result |\n|---|---|\n{table}\n\n"
            f"### Why no speedup? (ranked)\n\n{ranked}\n\n"
            f"### Decision guide, with your numbers\n\n{guide}\n")


def _decision_guide(usable: int, shortest_ms: float | None, card: dict[str, Any]) -> str:
    task = f"{shortest_ms:g} ms" if shortest_ms is not None else "a few ms"
    gil = ("pure-Python threads do not run in parallel here (the GIL is on)"
           if card.get("gil_enabled", True) else "this build runs pure-Python threads in "
           "parallel (no GIL), so threads are an option for pure Python too")
    return "\n".join([
        "1. **Make it fast serially first**: profile, then vectorise (NumPy) or use a better "
        "algorithm. It is often a bigger win than any pool.",
        "2. **Waiting, not computing** (network, disk)? An event loop (asyncio) or threads; "
        "no processes needed.",
        "3. **CPU work inside an event loop**: never inline; `loop.run_in_executor(pool, ...)` "
        "keeps the loop answering.",
        f"4. **GIL-releasing work** (NumPy, hashlib, zlib, Pillow): threads, up to {usable}.",
        f"5. **Pure-Python work**: processes, {usable} workers (the usable CPUs, not "
        f"`os.cpu_count()`); {gil}.",
        f"6. **Task size**: tasks under about {task} should be batched (`chunksize`, "
        "joblib's auto-batching) or merged.",
        "7. **NumPy inside processes**: one BLAS thread per worker.",
        "8. **Start pools once** and reuse them; a fresh pool under spawn pays for new "
        "interpreters.",
        "9. **More than one machine**, durable jobs, retries: Dask, or a task queue (Celery, RQ).",
    ])


def colleague_result() -> dict[str, Any]:
    """Exercise 10.2's input: a colleague's result, *invented* for the exercise (not measured).

    A container on a 16-CPU host, limited to one CPU by its quota.
    """
    summary = Summary(
        usable_cpus=1, start_method="fork",
        speedup={"python": {"WorkerPool": {1: SpeedupPoint(median=0.97, low=0.95, high=0.99)},
                            "threads": {1: SpeedupPoint(median=1.0, low=0.98, high=1.01)}}},
        task_size=TaskSizeTable(workers=1, efficiency={
            "ProcessPoolExecutor": {0.1: 0.31, 1.0: 0.82, 10.0: 0.97}}),
        overhead_seconds_per_task={"ProcessPoolExecutor": 70e-6},
        first_result_seconds={"fork": {"ProcessPoolExecutor": 0.006}},
    )
    return {
        "kind": suite.KIND, "mode": "quick", "created": "(invented for the exercise)",
        "machine": {"cpu_model": "Intel Xeon (invented)", "logical_cpus": 16,
                    "usable_cpus": 1, "affinity_cpus": 16, "cgroup_quota_cpus": 1.0,
                    "python": "3.12.4", "gil_enabled": True, "start_method": "fork"},
        "summary": summary.to_json(),
    }


def save(document: dict[str, Any],
         directory: Path | str = REFERENCE_DIR.parent.parent / "build" / "my-machine"
         ) -> list[Path]:
    """Write your result (JSON) and your one-page summary (Markdown) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result = measure.save_results(directory / "benchmark.json", document)
    page = directory / "summary.md"
    page.write_text(summary_page(document))
    return [result, page]
