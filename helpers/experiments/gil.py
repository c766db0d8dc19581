"""Notebook 02's experiments: which work scales with threads, and what the CPUs do.

``thread_sweeps``   the scaling sweep (``experiments.run_scaling``) on threads, per workload
``cpu_use``         busy CPUs over time, sampled from another process, threads vs processes
``summary``         one job on serial, threads, WorkerPool, joblib and other interpreters
``explain_*``       what a run shows, in sentences that follow its numbers and GIL state

Results are plain data for ``plots``; nothing here draws.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

from helpers.core import config, machine, measure, workloads
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
    gil_enabled: bool = True  # as the run found it

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
        runs.append(CpuUse(executor, workers, workload, sampler.samples,
                           gil_enabled=machine.gil_enabled()))
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


# --- what the runs say ---

C_WORKLOADS = ("sha256", "zlib", "pillow")  # loops in C with the GIL released


def explain_sweeps(sweeps: dict[str, ScalingResult], threads: int) -> str:
    """Each workload's speedup at ``threads``, then why, following the recorded GIL state."""
    speedup = {name: result.speedups()[threads].median for name, result in sweeps.items()
               if threads in result.speedups()}
    lines = [f"- **{name}**: {value:.2f}× with {threads} threads"
             for name, value in speedup.items()]
    gil_on = all(result.gil_enabled for result in sweeps.values())
    said = ["\n".join(lines), ""]
    if threads < 2:
        said.append("This kernel may use one CPU, so every line stays near 1×: there is "
                    "nowhere to run in parallel. On a machine with more CPUs, the lines part.")
        return "\n".join(said)
    if "python" in speedup:
        if gil_on:
            said.append("This run had the GIL on: pure-Python threads take turns holding it, "
                        "so the `python` line cannot rise much above 1× however many threads "
                        "run.")
        else:
            said.append("This run had the GIL **off** (a free-threaded build): pure-Python "
                        f"threads run at once, so the `python` line can rise like the C "
                        f"workloads' (here {speedup['python']:.2f}×).")
    released = [name for name in C_WORKLOADS if name in speedup]
    if released:
        said.append(f"{_names(released)} run their loops in C with the GIL released, so the "
                    "threads really run at once, GIL or no GIL.")
    if "numpy" in speedup:
        said.append("NumPy is the odd one: its matrix products may already use several cores "
                    "through the BLAS library's own threads (see the machine card's *BLAS "
                    "thread pools* row), and Python threads on top of those can "
                    "*oversubscribe* the CPUs; notebook 04 measures that.")
    return "\n".join(said)


def explain_cpu_use(thread_run: CpuUse, process_run: CpuUse) -> str:
    """How many CPUs the threads and the processes kept busy, and why, by the GIL state."""
    text = (f"With {thread_run.workers} threads the machine kept about "
            f"**{thread_run.median_busy:.1f}** CPUs busy; with {process_run.workers} processes, "
            f"about **{process_run.median_busy:.1f}**. ")
    if thread_run.workload != "python":
        return text + ("This workload's C code releases the GIL, so threads can keep "
                       "several CPUs busy.")
    if thread_run.gil_enabled:
        return text + ("With the GIL on, as here, pure-Python threads keep at most about one "
                       "CPU's worth busy running Python, however many threads there are.")
    return text + ("This run had the GIL **off**: pure-Python threads ran on several CPUs at "
                   "once, as the processes did, and shared one heap while doing so.")


def _names(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
