"""Notebook 02's experiments: which work scales with threads, and what the CPUs do.

``thread_sweeps``   the scaling sweep (``experiments.run_scaling``) on threads, per workload
``cpu_use``         busy CPUs over time, sampled from another process, threads vs processes
``summary``         one job on serial, threads, WorkerPool, joblib and other interpreters

Results are plain data for ``plots``; nothing here draws.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

from helpers.core import config, measure, workloads
from helpers.core.cpu_sampler import CpuSampler
from helpers.experiments import interpreters, strong_scaling
from helpers.experiments.executors import make_executor, warm_up
from helpers.experiments.strong_scaling import ScalingResult
from helpers.pool import WorkerPool
from helpers.pool.joblib_backend import joblib_session


def thread_sweeps(names: list[str] | None = None, workers: list[int] | None = None,
                  budget_seconds: float | None = None) -> dict[str, ScalingResult]:
    """The strong-scaling sweep on a ThreadPoolExecutor, for each available workload."""
    names = names or [n for n, w in workloads.WORKLOADS.items()
                      if w.available() and not w.io_bound]
    budget = budget_seconds if budget_seconds is not None else config.budget(3.0, 1.5)
    return {name: strong_scaling.run_scaling(workers, workload=name, executor="thread",
                                          budget_seconds=budget, progress=False)
            for name in names}


@dataclass
class CpuUse:
    """Busy CPUs over time while ``workers`` threads or processes ran one job."""

    executor: str
    workers: int
    workload: str
    samples: list[tuple[float, float]]

    @property
    def median_busy(self) -> float:
        """Median busy CPUs over the samples taken while the job ran (busy > 0.3)."""
        busy = [b for _, b in self.samples if b > 0.3]
        return statistics.median(busy) if busy else 0.0


def cpu_use(workload: str = "python", workers: int | None = None,
            executors: tuple[str, ...] = ("thread", "process")) -> list[CpuUse]:
    """Run one job (4 tasks per worker) per executor, sampling busy CPUs meanwhile.

    The pool is started and warmed up before sampling starts.
    """
    from helpers.core import machine

    workers = workers or max(2, machine.usable_cpus())
    calibration = workloads.calibrate(workload, budget_seconds=0.3)
    units = calibration.units_for(config.budget(0.25, 0.15))
    function = workloads.get(workload).function
    runs = []
    for executor in executors:
        pool = make_executor(executor, workers, None)
        try:
            warm_up(pool, workers)
            with CpuSampler() as sampler:
                list(pool.map(function, [units] * (4 * workers)))
        finally:
            pool.shutdown()
        runs.append(CpuUse(executor, workers, workload, sampler.samples))
    return runs


@dataclass
class SummaryRow:
    label: str
    seconds: measure.Spread
    speedup: float  # over serial, medians


def summary(workload: str = "python", workers: int | None = None, task_seconds: float = 0.05,
            repeats: int | None = None,
            others: list[interpreters.Interpreter] | None = None) -> list[SummaryRow]:
    """The same job (4 tasks per worker) on each way of running it, interleaved repeats."""
    from joblib import Parallel, delayed

    from helpers.core import machine

    workers = workers or machine.usable_cpus()
    repeats = repeats or int(config.budget(5, 3))
    calibration = workloads.calibrate(workload, budget_seconds=0.3)
    function, units = workloads.get(workload).function, calibration.units_for(task_seconds)
    tasks = 4 * workers
    thread_pool = make_executor("thread", workers, None)
    worker_pool = WorkerPool(workers)
    session = contextlib.ExitStack()  # joblib's workers and temporary files, cleaned up below
    session.enter_context(joblib_session())
    runner = Parallel(n_jobs=workers, backend="loky")
    ways = {
        "serial": lambda: [function(units) for _ in range(tasks)],
        f"{workers} threads": lambda: list(thread_pool.map(function, [units] * tasks)),
        f"{workers} processes (WorkerPool)": lambda: list(worker_pool.map(function,
                                                                          [units] * tasks)),
        f"{workers} processes (joblib, loky)": lambda: runner(delayed(function)(units)
                                                              for _ in range(tasks)),
    }
    times: dict[str, list[float]] = {label: [] for label in ways}
    try:
        for way in ways.values():
            way()  # warm up: start workers, import what they need
        for _, label in measure.interleaved(list(ways), repeats):
            start = time.perf_counter()
            ways[label]()
            times[label].append(time.perf_counter() - start)
    finally:
        thread_pool.shutdown()
        worker_pool.shutdown()
        session.close()
    for other in others or []:
        if workload not in ("python", "sha256", "zlib"):
            break
        document = interpreters.run_sweep(other, threads=[1, workers], workloads=[workload],
                                          task_ms=task_seconds * 1000, tasks=tasks,
                                          repeats=repeats)
        timings = document["results"]["thread"][workload]
        serial_there = statistics.median(timings["1"])
        serial_here = statistics.median(times["serial"])
        # scaled to this kernel's serial time, so the bars compare speedups
        times[f"{workers} threads in {other.label}"] = [
            s / serial_there * serial_here for s in timings[str(workers)]]
    serial = statistics.median(times["serial"])
    return [SummaryRow(label, measure.spread(values), serial / statistics.median(values))
            for label, values in times.items()]
