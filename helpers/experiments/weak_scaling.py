"""Weak scaling (Gustafson): the job grows with the workers.

::

    for each worker count p (repeats interleaved):
        start a pool of p, warm it up (not timed)
        time: p × tasks_per_worker equal tasks ──> T(p)
    ──> WeakScalingResult: seconds per p; efficiency T(1) / T(p); scaled speedup p × T(1) / T(p)

Strong scaling (:mod:`helpers.experiments.strong_scaling`) asks "how much sooner is *this*
job done?", and Amdahl's serial part caps the answer. Weak scaling asks "how much more
work gets done in the same time?": each worker always has the same amount to do, so with
perfect scaling the time stays flat and the scaled speedup is p. This is the question a
service with growing traffic, or a simulation that grows its grid with the machine, asks.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from helpers.core import config, machine, measure, workloads
from helpers.core.measure import Spread
from helpers.experiments import executors, strong_scaling


@dataclass
class WeakScalingResult:
    """Seconds per worker count for a job of ``tasks_per_worker`` tasks per worker."""

    workload: str
    executor: str
    start_method: str | None
    task_seconds: float
    tasks_per_worker: int
    usable_cpus: int
    seconds: dict[int, list[float]]  # workers -> one time per repeat
    gil_enabled: bool = True
    mode: str = "full"

    @property
    def workers(self) -> list[int]:
        return sorted(self.seconds)

    def efficiency(self) -> dict[int, Spread]:
        """T(1) / T(p), paired by repeat: 1.0 means the bigger job took no longer."""
        one = self.seconds[1]
        return {p: measure.spread(a / b for a, b in zip(one, times, strict=True))
                for p, times in self.seconds.items()}

    def scaled_speedup(self) -> dict[int, Spread]:
        """p × T(1) / T(p): how much more work per second than one worker (Gustafson)."""
        return {p: measure.spread(p * v for v in self._ratios(p)) for p in self.workers}

    def _ratios(self, p: int) -> list[float]:
        return [a / b for a, b in zip(self.seconds[1], self.seconds[p], strict=True)]


def run_weak_scaling(workers: Sequence[int] | None = None, *, workload: str = "python",
                     executor: str = "process", task_seconds: float | None = None,
                     tasks_per_worker: int = 4, repeats: int | None = None,
                     start_method: str | None = None) -> WeakScalingResult:
    """Time a job of ``tasks_per_worker`` tasks per worker on each worker count."""
    usable = machine.usable_cpus()
    counts = strong_scaling.validate_workers(
        list(workers) if workers is not None else strong_scaling.default_worker_counts(usable),
        usable)
    if executor not in strong_scaling.EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of: "
                         f"{', '.join(strong_scaling.EXECUTORS)}")
    task_seconds = task_seconds if task_seconds is not None else config.budget(0.05, 0.02)
    if not 0.001 <= task_seconds <= strong_scaling.MAX_TASK_SECONDS:
        raise ValueError(f"task_seconds={task_seconds!r} is out of range: use 0.001 to "
                         f"{strong_scaling.MAX_TASK_SECONDS} s")
    if not 1 <= tasks_per_worker <= 100:
        raise ValueError(f"tasks_per_worker={tasks_per_worker!r} is out of range: use 1 to 100")
    repeats = repeats if repeats is not None else int(config.budget(5, 3))
    if not 1 <= repeats <= 50:
        raise ValueError(f"repeats={repeats!r} is out of range: use 1 to 50")
    method = (start_method or config.start_method()) if executor == "process" else None
    chosen = workloads.get(workload)
    calibration = workloads.calibrate(workload, budget_seconds=config.budget(1.0, 0.3))
    units = calibration.units_for(task_seconds)
    seconds: dict[int, list[float]] = {p: [] for p in counts}
    for _, p in measure.interleaved(counts, repeats):
        pool = executors.make_executor(executor, p, method)
        try:
            executors.warm_up(pool, p)
            elapsed, _ = strong_scaling.timed_job(pool, chosen.function, units,
                                                  p * tasks_per_worker,
                                                  include_thread=executor == "thread")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        seconds[p].append(elapsed)
    return WeakScalingResult(workload, executor, method, task_seconds, tasks_per_worker, usable,
                             seconds, gil_enabled=machine.gil_enabled(), mode=config.mode())


def explain_weak_scaling(result: WeakScalingResult) -> str:
    """What the weak-scaling run shows, from its own numbers (Markdown)."""
    top = max(p for p in result.workers if p <= result.usable_cpus) if any(
        p <= result.usable_cpus for p in result.workers) else max(result.workers)
    efficiency = result.efficiency()[top]
    scaled = result.scaled_speedup()[top]
    one = statistics.median(result.seconds[1])
    lines = [f"Each worker had {result.tasks_per_worker} tasks of "
             f"{result.task_seconds * 1000:g} ms: 1 worker took {one:.2f} s for "
             f"{result.tasks_per_worker} tasks, {top} workers took "
             f"{statistics.median(result.seconds[top]):.2f} s for "
             f"{top * result.tasks_per_worker}. Scaled speedup (Gustafson): "
             f"**{scaled.median:.2f}×** (range {scaled.low:.2f}–{scaled.high:.2f}), "
             f"efficiency {efficiency.median:.0%}."]
    if top == 1:
        lines.append("With one usable CPU a bigger job simply takes longer: there is no second "
                     "CPU to take the extra work.")
    elif efficiency.median >= 0.85:
        lines.append("The bigger job took about as long as the small one: what each worker "
                     "does stayed the same, and the workers did not get in each other's way. "
                     "This is the speedup a growing job gets, even where Amdahl caps the "
                     "speedup of a fixed one.")
    else:
        lines.append("The bigger job took noticeably longer, although each worker's share "
                     "stayed the same: what the workers share (the CPUs' clock and caches, "
                     "the pool's one feeding thread, other programs on the machine) grew with "
                     "them. The hardware card and the diagnosis in notebook 10 name the usual "
                     "suspects.")
    spread = (efficiency.high - efficiency.low) / efficiency.median if efficiency.median else 0
    if spread > 0.2:
        lines.append(f"The repeats disagree by {spread:.0%} of the median: read the efficiency "
                     "as a range, not a point.")
    if result.executor == "thread" and workloads.get(result.workload).releases_gil is False \
            and result.gil_enabled:
        lines.append("These were threads with the GIL on: pure Python cannot run on two of "
                     "them at once, so a bigger job takes proportionally longer.")
    return " ".join(lines)
