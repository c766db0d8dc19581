"""The course benchmark: ``python -m helpers.bench`` runs every part below.

::

    plan: worker counts 1..usable CPUs, task sizes and repeats from the mode (quick/full)
    ──> parts, each measured side by side with interleaved repeats:
        scaling        one job on serial | threads | WorkerPool | ProcessPoolExecutor | joblib,
                       pure-Python ("python") and GIL-releasing ("sha256") work, 1..N workers
        task-size      one fixed job cut into tasks of 0.1 ms … 10 ms, on every usable CPU
        overhead       tiny tasks one by one: wall and parent CPU per task, per pool
        event-loop     the asyncio loop's worst lag while CPU work runs inline vs offloaded
        start-methods  time to first result of a fresh pool, per start method
        blas           NumPy matmul in processes: BLAS threads left alone vs one per worker
    ──> one JSON document: records (Measurement; a scaling run's ScalingMeasurement also
        holds its median and slowest task and the workers' idle share), a summary, the
        mode, full machine metadata, and per part the conditions it ran in (clock samples,
        steal, other programs' CPU, cgroup throttling: ``helpers.core.hardware``)

Every part gives each worker at least ``MIN_TASKS_PER_WORKER`` tasks, so a many-core
machine is not measured on a job that leaves half its workers idle for the last round.

It needs NumPy and joblib (installed with the course), not Jupyter or Dask, so it runs
on a bare server. In a notebook, run it part by part (``CourseBenchmark.run(part)``):
each part takes seconds in quick mode.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from helpers.bench import diagnosis
from helpers.bench.schema import Blas, Range, SpeedupPoint, Summary, TaskSizeTable
from helpers.core import config, hardware, machine, measure, workloads
from helpers.core.measure import Measurement
from helpers.experiments import eventloop, executors, pool_overhead, strong_scaling
from helpers.pool import WorkerPool
from helpers.pool.joblib_backend import joblib_session

PARTS = ("scaling", "task-size", "overhead", "event-loop", "start-methods", "blas")
SCALING_WORKLOADS = ("python", "sha256")
SCALING_EXECUTORS = ("threads", "WorkerPool", "ProcessPoolExecutor", "joblib")
LOOP_STRATEGIES = ("inline", "WorkerPool")
KIND = "course-benchmark"
#: The fewest tasks every worker gets in the scaling and task-size parts (quick, full).
#: With 2, one worker that finishes a task late can leave the others idle for up to half
#: the job (load imbalance); with 4, a quarter; with 8, an eighth.
MIN_TASKS_PER_WORKER = {"quick": 4, "full": 8}
#: Plans of this version are comparable with each other; older results are marked.
PLAN_VERSION = 2


@dataclass(frozen=True)
class Plan:
    """How big every part is; chosen from the mode and the usable CPUs."""

    mode: str
    repeats: int
    workers: list[int]
    start_method: str
    scaling_task_seconds: float  # the longest task; many CPUs get shorter ones (the budget)
    scaling_budget_seconds: float  # timed seconds per workload, all configurations together
    task_sizes_ms: tuple[float, ...]
    task_size_job_seconds: float
    loop_cpu_task_seconds: float
    blas_tasks_per_worker: int
    min_tasks_per_worker: int = MIN_TASKS_PER_WORKER["full"]
    plan_version: int = PLAN_VERSION

    @classmethod
    def make(cls, quick: bool | None = None, repeats: int | None = None,
             start_method: str | None = None, usable: int | None = None) -> Plan:
        quick = config.quick_mode() if quick is None else quick
        usable = usable or machine.usable_cpus()
        repeats = repeats if repeats is not None else (3 if quick else 5)
        if not 1 <= repeats <= 50:
            raise ValueError(f"repeats={repeats!r} is out of range: use 1 to 50")
        method = start_method or config.start_method()
        if method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"start method {method!r} is not available here; choose from "
                             f"{', '.join(multiprocessing.get_all_start_methods())}")
        counts = strong_scaling.default_worker_counts(usable)
        if quick:  # at most four worker counts: 1, 2, half and all of the usable CPUs
            counts = sorted({1, min(2, usable), max(1, usable // 2), usable})
            return cls("quick", repeats, counts, method, 0.02, 4.0, (0.1, 1.0, 10.0), 0.25,
                       0.15, 2, MIN_TASKS_PER_WORKER["quick"])
        return cls("full", repeats, counts, method, 0.05, 60.0,
                   (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0), 1.0, 0.5, 4,
                   MIN_TASKS_PER_WORKER["full"])


def _record(plan: Plan, experiment: str, executor: str, workers: int, workload: str,
            task_seconds: float, tasks: int, repeat: int, seconds: float,
            start_method: str | None) -> Measurement:
    return Measurement(experiment=experiment, executor=executor, workers=workers,
                       workload=workload, task_seconds=task_seconds, tasks=tasks,
                       repeat=repeat, seconds=seconds, start_method=start_method,
                       mode=plan.mode, machine_id=machine.machine_id())


@dataclass(frozen=True)
class ScalingMeasurement(Measurement):
    """A scaling run, with its tasks' own durations as measured inside the workers.

    ``idle_share`` is the share of the workers' time spent running no task,
    ``1 - sum(task seconds) / (workers × wall seconds)``: waiting for the last, slow task
    (a straggler) and for the next task to arrive. All three are None for serial runs;
    results recorded before they existed lack them.
    """

    task_seconds_median: float | None = None
    task_seconds_max: float | None = None
    idle_share: float | None = None


def _task_figures(workers: int, seconds: float, durations: list[float]) -> dict[str, float]:
    """The median and slowest task and the workers' idle share of one run ({} if untimed)."""
    if not durations or seconds <= 0:
        return {}
    busy = sum(durations) / (workers * seconds)
    return {"task_seconds_median": statistics.median(durations),
            "task_seconds_max": max(durations), "idle_share": max(0.0, 1 - busy)}


def _method_of(executor: str, plan: Plan) -> str | None:
    return {"WorkerPool": plan.start_method, "ProcessPoolExecutor": plan.start_method,
            "joblib": "loky"}.get(executor)


# --- scaling: serial vs threads vs processes ---


def _run_job(executor: str, workers: int, plan: Plan, fn: Callable[[int], Any], units: int,
             tasks: int) -> tuple[float, list[float]]:
    """Start the executor, warm it up (not timed), time the job, stop the executor.

    Returns the job's wall seconds and, except serially, each task's own seconds:
    ``workloads.timed_task`` runs the task and times it inside the worker.
    """
    if executor == "serial":
        start = time.perf_counter()
        for _ in range(tasks):
            fn(units)
        return time.perf_counter() - start, []
    if executor == "joblib":
        from joblib import Parallel, delayed

        with Parallel(n_jobs=workers, backend="loky") as parallel:
            parallel(delayed(workloads.sleep_io)(20) for _ in range(2 * workers))
            start = time.perf_counter()
            durations = parallel(delayed(workloads.timed_task)(fn, units) for _ in range(tasks))
            return time.perf_counter() - start, list(durations)
    kind = {"threads": "thread", "WorkerPool": "WorkerPool"}.get(executor, "process")
    pool = executors.make_executor(kind, workers, plan.start_method)
    try:
        executors.warm_up(pool, workers)
        start = time.perf_counter()
        futures = [pool.submit(workloads.timed_task, fn, units) for _ in range(tasks)]
        durations = [future.result() for future in futures]
        return time.perf_counter() - start, durations
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def scaling_job(plan: Plan) -> tuple[int, float]:
    """(tasks, seconds per task) so that every configuration of one workload fits the budget.

    A run on ``p`` workers takes about ``tasks × task_seconds / p``, except threads on
    pure Python, which take the serial time (the GIL). At least ``min_tasks_per_worker``
    tasks per worker at the largest count; many CPUs therefore get shorter tasks, never
    under 2 ms.
    """
    top = max(plan.workers)
    share = plan.repeats * (1 + len(plan.workers)
                            + (len(SCALING_EXECUTORS) - 1) * sum(1 / p for p in plan.workers))
    tasks = max(plan.min_tasks_per_worker * top,
                int(plan.scaling_budget_seconds / share / plan.scaling_task_seconds))
    tasks = math.ceil(tasks / top) * top  # a multiple of the largest worker count
    task_seconds = min(plan.scaling_task_seconds,
                       max(0.002, plan.scaling_budget_seconds / share / tasks))
    return tasks, task_seconds


def scaling(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """The same job on every executor and worker count, for each scaling workload."""
    records = []
    configs = [("serial", 1)] + [(e, p) for e in SCALING_EXECUTORS for p in plan.workers]
    tasks, task_seconds = scaling_job(plan)
    with joblib_session():  # loky stopped and joblib's temporary files removed at the end
        for workload in SCALING_WORKLOADS:
            calibration = workloads.calibrate(workload, budget_seconds=0.3
                                              if plan.mode == "quick" else 1.0)
            units = calibration.units_for(task_seconds)
            for repeat, (executor, workers) in measure.interleaved(configs, plan.repeats):
                seconds, durations = _run_job(executor, workers, plan,
                                              workloads.get(workload).function, units, tasks)
                record = _record(plan, "scaling", executor, workers, workload, task_seconds,
                                 tasks, repeat, seconds, _method_of(executor, plan))
                records.append(ScalingMeasurement(
                    **record.as_dict(), **_task_figures(workers, seconds, durations)))
            say(f"  scaling, {workload} workload: {tasks} tasks of "
                f"{task_seconds * 1000:.3g} ms on {len(configs)} configurations")
    return records


# --- task size: where the per-task overhead eats the speedup ---


def task_size(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """One fixed job cut into smaller and smaller tasks, on every usable CPU."""
    workers = max(plan.workers)
    calibration = workloads.calibrate("python", budget_seconds=0.3)
    context = config.mp_context(plan.start_method)
    pools: dict[str, Any] = {
        "WorkerPool": WorkerPool(workers, mp_context=context),
        "ProcessPoolExecutor": executors.make_executor("process", workers, plan.start_method),
    }
    records = []
    try:
        for pool in pools.values():
            executors.warm_up(pool, workers)
        configs = [(size, executor) for size in plan.task_sizes_ms
                   for executor in ("serial", *pools)]
        for repeat, (size_ms, executor) in measure.interleaved(configs, plan.repeats):
            units = calibration.units_for(size_ms / 1000)
            tasks = max(plan.min_tasks_per_worker * workers,
                        round(plan.task_size_job_seconds / (size_ms / 1000)))
            tasks = math.ceil(tasks / workers) * workers  # every worker gets as many
            start = time.perf_counter()
            if executor == "serial":
                for _ in range(tasks):
                    workloads.python_loop(units)
            else:
                futures = [pools[executor].submit(workloads.python_loop, units)
                           for _ in range(tasks)]
                for future in futures:
                    future.result()
            records.append(_record(plan, "task-size", executor,
                                   1 if executor == "serial" else workers, "python",
                                   size_ms / 1000, tasks, repeat, time.perf_counter() - start,
                                   None if executor == "serial" else plan.start_method))
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True)
    say(f"  task size: {len(plan.task_sizes_ms)} sizes from {min(plan.task_sizes_ms):g} to "
        f"{max(plan.task_sizes_ms):g} ms on {workers} workers")
    return records


# --- per-task overhead and start-up, from the pool benchmark ---


def overhead(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """Tiny tasks, one submission each: per-task wall time and parent CPU, per pool."""
    sizes = pool_overhead.Sizes.for_mode(plan.mode == "quick")
    return [_with_mode(r, plan) for r in
            pool_overhead.tiny_and_latency(plan.start_method, sizes, plan.repeats, say)]


def start_methods(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """Time to first result of a fresh pool, for every start method this OS has."""
    records = []
    for method in multiprocessing.get_all_start_methods():
        records += pool_overhead.first_result(method, plan.repeats, say)
    return [_with_mode(r, plan) for r in records]


def _with_mode(record: Measurement, plan: Plan) -> Measurement:
    return Measurement(**{**record.as_dict(), "mode": plan.mode})


# --- the event loop: lag with and without offloading ---


def _run_coroutine(make: Callable[[], Any]) -> Any:
    """Run a coroutine to the end, also from inside Jupyter (whose loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as thread:  # a fresh loop in another thread
        return thread.submit(lambda: asyncio.run(make())).result()


def event_loop(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """The loop's worst lag while CPU tasks run inline, and offloaded to a WorkerPool."""
    calibration = workloads.calibrate("python", budget_seconds=0.2)
    workers = min(2, max(plan.workers))
    records = []
    for repeat, strategy in measure.interleaved(LOOP_STRATEGIES, plan.repeats):
        run = _run_coroutine(lambda strategy=strategy: eventloop.lag_experiment(
            strategy, cpu_tasks=2, cpu_task_seconds=plan.loop_cpu_task_seconds,
            workers=workers, quiet_seconds=0.1, start_method=plan.start_method,
            calibration=calibration))
        method = None if strategy == "inline" else plan.start_method
        for experiment, seconds in (("loop-lag", run.max_lag), ("loop-cpu", run.cpu_seconds)):
            records.append(_record(plan, experiment, strategy, workers, "python",
                                   plan.loop_cpu_task_seconds, 2, repeat, seconds, method))
    say(f"  event loop: worst lag with CPU work inline and offloaded ({plan.repeats} repeats)")
    return records


# --- BLAS threads × worker processes ---


def blas_skip_reason() -> str | None:
    """Why the BLAS part cannot run here, or None if it can."""
    try:
        import numpy  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed"
    pools = machine.blas_threadpools()
    if not pools:
        return "NumPy loaded no BLAS/OpenMP thread pool that threadpoolctl can see"
    if max(p["threads"] or 1 for p in pools) < 2:
        return "BLAS runs one thread per process here, so there is nothing to oversubscribe"
    return None


BLAS_CONFIGS = ("1 process, BLAS threads", "processes, BLAS threads", "processes, 1 BLAS thread")


#: Enough processes to show oversubscription without starting thousands of threads.
BLAS_MAX_WORKERS = 8


def blas(plan: Plan, say: Callable[[str], None]) -> list[Measurement]:
    """NumPy matmul: one process using BLAS threads, N processes each using BLAS threads
    (oversubscribed), N processes with one BLAS thread each."""
    workers = min(max(plan.workers), BLAS_MAX_WORKERS)
    context = config.mp_context(plan.start_method)
    tasks = plan.blas_tasks_per_worker * workers
    records = []
    for repeat, name in measure.interleaved(BLAS_CONFIGS, plan.repeats):
        size = 1 if name.startswith("1 process") else workers
        limit = {"initializer": workloads.limit_blas_threads, "initargs": (1,)} \
            if name.endswith("1 BLAS thread") else {}
        with WorkerPool(size, mp_context=context, **limit) as pool:
            executors.warm_up(pool, size)
            pool.submit(workloads.blas_matmul, 1).result()
            start = time.perf_counter()
            for _ in pool.map(workloads.blas_matmul, [10] * tasks, chunksize=1):
                pass
            records.append(_record(plan, "blas", name, size, "blas_matmul", 0.0, tasks, repeat,
                                   time.perf_counter() - start, plan.start_method))
    say(f"  BLAS: {tasks} tasks of 10 products of 512×512 matrices, three ways")
    return records


RUNNERS: dict[str, Callable[[Plan, Callable[[str], None]], list[Measurement]]] = {
    "scaling": scaling, "task-size": task_size, "overhead": overhead,
    "event-loop": event_loop, "start-methods": start_methods, "blas": blas,
}


# --- the whole suite ---


class CourseBenchmark:
    """Runs the parts (all, or one at a time from a notebook) and collects the records."""

    def __init__(self, quick: bool | None = None, repeats: int | None = None,
                 start_method: str | None = None, progress: TextIO | None = sys.stdout) -> None:
        self.plan = Plan.make(quick, repeats, start_method)
        self.progress = progress
        self.records: list[Measurement] = []
        self.skipped: dict[str, str] = {}
        self.conditions: dict[str, dict[str, Any]] = {}  # part -> hardware.Conditions
        self.seconds: dict[str, float] = {}

    def say(self, text: str) -> None:
        if self.progress is not None:
            print(text, file=self.progress, flush=True)

    def run(self, part: str) -> list[Measurement]:
        """Run one part (see PARTS), keep its records, and return them."""
        if part not in RUNNERS:
            raise ValueError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
        if part == "blas" and (reason := blas_skip_reason()) is not None:
            self.skipped[part] = reason
            self.say(f"{part}: skipped, {reason}")
            return []
        self.say(f"{part} ({self.plan.mode} mode, {self.plan.repeats} repeats) …")
        start = time.perf_counter()
        self.records = [r for r in self.records if r.experiment not in _EXPERIMENTS[part]]
        with hardware.ConditionsMonitor() as monitor:
            records = RUNNERS[part](self.plan, self.say)
        self.conditions[part] = monitor.conditions.as_dict()
        self.records += records
        self.seconds[part] = time.perf_counter() - start
        self.say(f"{part}: done in {self.seconds[part]:.1f} s")
        return records

    def run_all(self, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
        for part in parts:
            self.run(part)
        return self.document()

    def document(self) -> dict[str, Any]:
        """The result: records, summary, plan, mode, and the machine it ran on."""
        metadata = machine.benchmark_metadata()
        return measure.result_document(
            KIND, self.records, metadata, mode=self.plan.mode, plan=asdict(self.plan),
            parts_seconds=self.seconds, skipped=self.skipped, conditions=self.conditions,
            summary=summarize(self.records, metadata).to_json(),
        )


_EXPERIMENTS = {
    "scaling": {"scaling"}, "task-size": {"task-size"},
    "overhead": {"tiny", "parent-cpu", "latency"}, "event-loop": {"loop-lag", "loop-cpu"},
    "start-methods": {"first-result"}, "blas": {"blas"},
}


def run(quick: bool = False, repeats: int | None = None, start_method: str | None = None,
        parts: tuple[str, ...] = PARTS, progress: TextIO | None = None) -> dict[str, Any]:
    """Run the suite and return its result document."""
    return CourseBenchmark(quick, repeats, start_method, progress).run_all(parts)


# --- the summary: medians the plots, the diagnosis and the report read ---


def _by_executor(records: list[Measurement], experiment: str,
                 per_task: bool = False) -> dict[str, list[float]]:
    """{executor: seconds of every repeat} (per task if ``per_task``) for one experiment."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.experiment == experiment:
            values[r.executor].append(r.seconds / r.tasks if per_task else r.seconds)
    return values


def _median_by_executor(records: list[Measurement], experiment: str,
                        per_task: bool = False) -> dict[str, float]:
    """{executor: median seconds} (per task if ``per_task``) for one experiment."""
    return {executor: statistics.median(v)
            for executor, v in _by_executor(records, experiment, per_task).items()}


def _range_by_executor(records: list[Measurement], experiment: str,
                       per_task: bool = False) -> dict[str, Range]:
    """{executor: (fastest, slowest)} over the repeats, for the plots' whiskers."""
    return {executor: (min(v), max(v))
            for executor, v in _by_executor(records, experiment, per_task).items()}


def _speedup_table(records: list[Measurement]) -> dict[str, dict[str, dict[int, SpeedupPoint]]]:
    """{workload: {executor: {workers: SpeedupPoint}}}: speedup over serial, per repeat."""
    serial = {(r.workload, r.repeat): r.seconds for r in records
              if r.experiment == "scaling" and r.executor == "serial"}
    ratios: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.experiment == "scaling" and r.executor != "serial" \
                and (r.workload, r.repeat) in serial:
            ratios[(r.workload, r.executor, r.workers)].append(
                serial[(r.workload, r.repeat)] / r.seconds)
    table: dict[str, dict[str, dict[int, SpeedupPoint]]] = {}
    for (workload, executor, workers), values in sorted(ratios.items()):
        s = measure.spread(values)
        table.setdefault(workload, {}).setdefault(executor, {})[workers] = SpeedupPoint(
            median=s.median, low=s.low, high=s.high)
    return table


def _task_size_table(records: list[Measurement]) -> TaskSizeTable:
    """{executor: {task ms: efficiency}} (serial time / (parallel time × workers)), medians,
    and under ``range`` the lowest and highest efficiency over the repeats."""
    serial = {(r.task_seconds, r.repeat): r.seconds for r in records
              if r.experiment == "task-size" and r.executor == "serial"}
    values: dict[tuple, list[float]] = defaultdict(list)
    workers: dict[str, int] = {}
    for r in records:
        if r.experiment == "task-size" and r.executor != "serial" \
                and (r.task_seconds, r.repeat) in serial:
            values[(r.executor, r.task_seconds)].append(
                serial[(r.task_seconds, r.repeat)] / (r.seconds * r.workers))
            workers[r.executor] = r.workers
    efficiency: dict[str, dict[float, float]] = {}
    spans: dict[str, dict[float, Range]] = {}
    for (executor, task_seconds), effs in sorted(values.items()):
        ms = float(f"{task_seconds * 1000:g}")  # 0.1, not 0.09999999999999999
        efficiency.setdefault(executor, {})[ms] = statistics.median(effs)
        spans.setdefault(executor, {})[ms] = (min(effs), max(effs))
    return TaskSizeTable(workers=max(workers.values(), default=None), efficiency=efficiency,
                         range=spans)


def summarize(records: list[Measurement], metadata: dict[str, Any]) -> Summary:
    """Medians by part: what the notebook plots and the diagnosis read (see ``schema``)."""
    first: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.experiment == "first-result":
            first[r.start_method or "?"][r.executor].append(r.seconds)
    blas_times = _median_by_executor(records, "blas")
    blas_summary = None
    if len(blas_times) == len(BLAS_CONFIGS):
        blas_summary = Blas(
            seconds=blas_times,
            blas_threads=max((p["threads"] or 1 for p in metadata.get("blas", [])),
                             default=None),
            oversubscription_slowdown=blas_times["processes, BLAS threads"]
            / blas_times["processes, 1 BLAS thread"],
        )
    return Summary(
        usable_cpus=metadata.get("usable_cpus"),
        start_method=next((r.start_method for r in records if r.experiment == "scaling"
                           and r.executor == "WorkerPool"), None),
        speedup=_speedup_table(records),
        task_size=_task_size_table(records),
        overhead_seconds_per_task=_median_by_executor(records, "tiny", per_task=True),
        overhead_range=_range_by_executor(records, "tiny", per_task=True),
        parent_cpu_seconds_per_task=_median_by_executor(records, "parent-cpu", per_task=True),
        loop_max_lag_seconds=_median_by_executor(records, "loop-lag"),
        first_result_seconds={method: {executor: statistics.median(values)
                                       for executor, values in pools.items()}
                              for method, pools in first.items()},
        first_result_range={method: {executor: (min(values), max(values))
                                     for executor, values in pools.items()}
                            for method, pools in first.items()},
        blas=blas_summary,
    )


def report(document: dict[str, Any]) -> str:
    """The summary as text, for the terminal."""
    card, summary = document["machine"], Summary.from_json(document["summary"])
    lines = [f"Course benchmark ({document['mode']} mode) on {card['cpu_model']}, "
             f"{card['usable_cpus']} usable CPUs, Python {card['python']}"
             f"{' (free-threaded)' if card.get('free_threaded_build') else ''}"]
    for workload, table in summary.speedup.items():
        lines.append(f"\nspeedup over serial, {workload} workload:")
        for executor, points in table.items():
            cells = ", ".join(f"{p}: {v.median:.2f}×" for p, v in points.items())
            lines.append(f"  {executor:<20} {cells}")
    efficiency = summary.task_size.efficiency
    if efficiency:
        lines.append(f"\nefficiency by task size ({summary.task_size.workers} workers):")
        for executor, points in efficiency.items():
            cells = ", ".join(f"{ms:g} ms: {v:.0%}" for ms, v in points.items())
            lines.append(f"  {executor:<20} {cells}")
    if summary.overhead_seconds_per_task:
        lines.append("\nper tiny task (one submit each): " + ", ".join(
            f"{k} {v * 1e6:.1f} µs" for k, v in summary.overhead_seconds_per_task.items()))
    if summary.loop_max_lag_seconds:
        lines.append("worst event-loop lag: " + ", ".join(
            f"{k} {v * 1000:.0f} ms" for k, v in summary.loop_max_lag_seconds.items()))
    for method, pools in summary.first_result_seconds.items():
        lines.append(f"first result, {method}: " + ", ".join(
            f"{k} {v * 1000:.0f} ms" for k, v in pools.items()))
    if summary.blas:
        lines.append(f"BLAS oversubscription: {summary.blas.oversubscription_slowdown:.2f}× "
                     "slower than one BLAS thread per worker")
    for part, reason in document.get("skipped", {}).items():
        lines.append(f"{part}: skipped, {reason}")
    findings = diagnosis.why_no_speedup(document)
    lines.append("\nwhy no speedup? " + ("nothing found" if not findings else ""))
    for rank, finding in enumerate(findings, 1):
        lines.append(f"  {rank}. {finding.title}: {finding.evidence} Fix: {finding.fix}")
    return "\n".join(lines)


def plan_comparable(document: dict[str, Any]) -> str | None:
    """Why a recorded result's plan cannot be compared with today's, or None if it can."""
    version = document.get("plan", {}).get("plan_version", 1)
    if version != PLAN_VERSION:
        return (f"recorded with plan version {version} (this course's benchmark is version "
                f"{PLAN_VERSION}, which gives every worker at least "
                f"{MIN_TASKS_PER_WORKER['quick']} tasks in quick mode and "
                f"{MIN_TASKS_PER_WORKER['full']} in full mode), so its scaling and task-size "
                "figures are not like for like")
    return None
