"""The scaling experiment: one fixed job on 1..N workers.

::

    calibrate the workload ──> split the job into equal tasks
        for each repeat, for each worker count (interleaved):
            start a pool, warm it up (not timed)
            time: submit every task (traced) ──> wait for every result
            shut the pool down
    ──> ScalingResult: Measurements + task traces ──> plots, widgets, checks

The job is the same for every worker count (*strong scaling*), so the speedup at
``p`` workers is simply ``time(1 worker) / time(p workers)``. The one-worker
baseline runs in a one-worker pool, so it pays the same per-task costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from helpers.core import config, machine, measure, workloads
from helpers.core.measure import AmdahlFit, Measurement, Spread
from helpers.core.trace import TaskRecord, relative_to, traced_call
from helpers.experiments import executors

EXECUTORS = ("process", "thread")
#: Longest task the experiments accept, so a typo cannot freeze a notebook for minutes.
MAX_TASK_SECONDS = 5.0


@dataclass
class ScalingResult:
    """What one scaling experiment measured. Plain data: plots and checks read it."""

    workload: str
    executor: str
    start_method: str | None
    task_seconds: float
    tasks: int
    usable_cpus: int
    measurements: list[Measurement]
    traces: dict[int, list[TaskRecord]] = field(default_factory=dict)
    calibration: workloads.Calibration | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    gil_enabled: bool = True

    @property
    def workers(self) -> list[int]:
        return sorted({m.workers for m in self.measurements})

    @property
    def mode(self) -> str:
        """``"quick"`` or ``"full"``: the mode the sweep ran in (references of the same
        mode are the ones to draw beside it)."""
        return self.measurements[0].mode if self.measurements else config.mode()

    def seconds(self) -> dict[int, Spread]:
        """Run time per worker count: median and range over the repeats."""
        return {p: measure.spread(m.seconds for m in self.measurements if m.workers == p)
                for p in self.workers}

    def speedups(self) -> dict[int, Spread]:
        """Speedup over one worker, per worker count: median and range over the repeats."""
        return {p: measure.spread(values)
                for p, values in measure.speedups(self.measurements).items()}

    def fit(self) -> AmdahlFit | None:
        """Amdahl fit over the worker counts up to the usable CPUs, or None if impossible.

        Worker counts past the usable CPUs measure oversubscription, not the serial
        fraction, so they are left out of the fit.
        """
        points = [(p, s) for p, values in measure.speedups(self.measurements).items()
                  for s in values if p <= self.usable_cpus]
        try:
            return measure.fit_amdahl(points)
        except ValueError:
            return None

    def document(self) -> dict[str, Any]:
        """JSON-ready document in the course's result schema."""
        return measure.result_document(
            "scaling", self.measurements, self.machine,
            workload=self.workload, executor=self.executor,
            task_seconds=self.task_seconds, tasks=self.tasks,
        )

    def explain(self) -> str:
        """A few sentences, in Markdown, on what this run showed, with its own numbers."""
        speedups = self.speedups()
        top = max(self.workers)
        lines = []
        if top == 1:
            lines.append(
                "Only one worker count was measured, so there is no speedup to report. "
                "On a 1-CPU machine that is all there is: compare with the reference "
                "machines instead."
            )
            return "\n\n".join(lines)
        best_p = max((p for p in self.workers if p <= self.usable_cpus), default=top)
        s = speedups[best_p]
        lines.append(
            f"With **{best_p} workers** the job ran **{s.median:.2f}× faster** than with one "
            f"(median of {s.count} repeats, range {s.low:.2f}–{s.high:.2f}×). Perfect scaling "
            f"would be {best_p}×, so the parallel efficiency is "
            f"**{measure.efficiency(s.median, best_p):.0%}**."
        )
        if s.high - s.low > abs(s.median - 1):
            lines.append(
                "The repeats spread over more than the effect itself: this machine was "
                "busy or noisy. Run it again before drawing conclusions."
            )
        over = [p for p in self.workers if p > self.usable_cpus]
        if over:
            p = max(over)
            lines.append(
                f"Past the {self.usable_cpus} usable CPUs, {p} workers gave "
                f"{speedups[p].median:.2f}×: extra workers only take turns on the same CPUs."
            )
        fit = self.fit()
        if fit is not None:
            lines.append(
                f"Amdahl's law fitted to this run puts the serial fraction at "
                f"{fit.serial_fraction:.1%} (range {fit.low:.1%}–{fit.high:.1%} over the "
                f"repeats). {fit.note}"
            )
        return "\n\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.explain()


def default_worker_counts(limit: int) -> list[int]:
    """1..limit when small; otherwise powers of two plus ``limit`` itself."""
    if limit <= 8:
        return list(range(1, limit + 1))
    counts = {1, limit}
    p = 2
    while p < limit:
        counts.add(p)
        p *= 2
    return sorted(counts)


def validate_workers(workers: Sequence[int], usable: int) -> list[int]:
    """Check a list of worker counts; allows up to 4× the usable CPUs (oversubscription)."""
    limit = 4 * usable
    if not workers:
        raise ValueError("workers must name at least one worker count")
    for p in workers:
        if not isinstance(p, int) or isinstance(p, bool) or not 1 <= p <= limit:
            raise ValueError(
                f"worker count {p!r} is not allowed: use whole numbers from 1 to {limit} "
                f"(4 × the {usable} usable CPUs)"
            )
    return sorted(set(workers) | {1})


def timed_job(
    executor: Executor, function: Any, units: int, tasks: int, include_thread: bool
) -> tuple[float, list[TaskRecord]]:
    """Submit ``tasks`` traced tasks, wait for all; return (seconds, task records)."""
    start = time.perf_counter()
    futures = [executor.submit(traced_call, function, task_id, time.perf_counter(), units,
                               include_thread=include_thread)
               for task_id in range(tasks)]
    records = [future.result()[1] for future in futures]
    return time.perf_counter() - start, relative_to(records, start)


def run_scaling(
    workers: Sequence[int] | None = None,
    *,
    workload: str = "python",
    executor: str = "process",
    task_seconds: float | None = None,
    repeats: int | None = None,
    budget_seconds: float | None = None,
    start_method: str | None = None,
    calibration: workloads.Calibration | None = None,
    progress: bool = True,
) -> ScalingResult:
    """Time the same job on each worker count and return a :class:`ScalingResult`.

    ``workers`` defaults to 1..usable CPUs; ``task_seconds`` to 20 ms (quick mode) or
    50 ms; ``repeats`` to 3 (quick) or 5; ``budget_seconds`` (the timed part) to 4 s
    (quick) or 12 s. The job is sized so the whole sweep fits the budget.
    """
    usable = machine.usable_cpus()
    counts = validate_workers(list(workers) if workers is not None
                              else default_worker_counts(usable), usable)
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of: {', '.join(EXECUTORS)}")
    task_seconds = task_seconds if task_seconds is not None else config.budget(0.05, 0.02)
    if not 0.001 <= task_seconds <= MAX_TASK_SECONDS:
        raise ValueError(
            f"task_seconds={task_seconds!r} is out of range: use 0.001 to {MAX_TASK_SECONDS} s"
        )
    repeats = repeats if repeats is not None else int(config.budget(5, 3))
    if not 1 <= repeats <= 50:
        raise ValueError(f"repeats={repeats!r} is out of range: use 1 to 50")
    budget_seconds = budget_seconds if budget_seconds is not None else config.budget(12, 4)
    method = (start_method or config.start_method()) if executor == "process" else None

    chosen = workloads.get(workload)
    if calibration is None or calibration.workload != workload:
        calibration = workloads.calibrate(workload, budget_seconds=config.budget(1.0, 0.3))
    units = calibration.units_for(task_seconds)
    tasks = job_size(counts, task_seconds, repeats, budget_seconds)

    measurements: list[Measurement] = []
    traces: dict[int, list[TaskRecord]] = {}
    card_id = machine.machine_id()
    runs = list(measure.interleaved(counts, repeats))
    kind = "processes" if executor == "process" else "threads"
    for repeat, p in _progress(runs, progress, f"{workload} on 1..{max(counts)} {kind}"):
        pool = executors.make_executor(executor, p, method)
        try:
            executors.warm_up(pool, p)
            seconds, records = timed_job(pool, chosen.function, units, tasks,
                                         include_thread=executor == "thread")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        traces[p] = records
        measurements.append(Measurement(
            experiment="scaling", executor=executor, workers=p, workload=workload,
            task_seconds=task_seconds, tasks=tasks, repeat=repeat, seconds=seconds,
            start_method=method, mode=config.mode(), machine_id=card_id,
        ))
    return ScalingResult(
        workload=workload, executor=executor, start_method=method,
        task_seconds=task_seconds, tasks=tasks, usable_cpus=usable,
        measurements=measurements, traces=traces, calibration=calibration,
        machine={"machine_id": card_id, "usable_cpus": usable},
        gil_enabled=machine.gil_enabled(),  # as the run ended: an import can switch it on
    )


def job_size(counts: Sequence[int], task_seconds: float, repeats: int,
             budget_seconds: float) -> int:
    """Tasks in the job: fills the budget, at least 4 per worker, a multiple of the largest count.

    A run on ``p`` workers takes about ``tasks * task_seconds / min(p, CPUs)``; the
    budget is shared by every run of the sweep.
    """
    usable = machine.usable_cpus()
    share = sum(1 / min(p, usable) for p in counts) * repeats
    tasks = int(budget_seconds / share / task_seconds)
    top = max(counts)
    tasks = max(tasks, 4 * top)
    return math.ceil(tasks / top) * top


def _progress(items: list[Any], enabled: bool, description: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, leave=False)


# --- a learner's timing loop (exercise 00.3) ---


@dataclass(frozen=True)
class TimingCheck:
    """What a learner's ``time_job(workers, units, tasks)`` measured, beside the work."""

    seconds: dict[int, float]  # workers -> what it returned
    work_seconds: float  # the job's work, run serially here first
    tasks: int


def check_time_job(time_job: Any, task_seconds: float = 0.05) -> TimingCheck:
    """Run the learner's timing function for 1 worker and for every usable CPU, on a job of
    4 tasks per usable CPU, after timing the same job serially here."""
    usable = machine.usable_cpus()
    calibration = workloads.calibrate("python", budget_seconds=0.3)
    units = calibration.units_for(task_seconds)
    tasks = 4 * usable
    start = time.perf_counter()
    for _ in range(tasks):
        workloads.python_loop(units)
    work = time.perf_counter() - start
    seconds = {p: time_job(p, units, tasks) for p in sorted({1, usable})}
    return TimingCheck(seconds, work, tasks)
