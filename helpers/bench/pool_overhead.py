"""The pool benchmark: WorkerPool next to the standard library's pools and joblib.

Everything runs side by side in one process, on the same work functions (module
functions from ``helpers.workloads``), with 2 workers, each pool warmed up the same
way, repeats interleaved (A B C, B C A, …) and medians reported. Five experiments:

``tiny``          N tiny tasks, one ``submit`` per task (``imap(chunksize=1)`` for
                  multiprocessing.Pool): wall time and the parent's CPU time per task
``map``           ``WorkerPool.map(chunksize="auto")`` against joblib's auto-batching
                  (``Parallel(batch_size="auto")``, loky) over many tiny tasks
``coarse``        4 × workers pure-Python tasks of 0.1–0.25 s: speedup over running
                  them one after another in this process (pool start-up excluded)
``first-result``  start a pool, submit one task, get its result: time to first result
``latency``       one task at a time on a warm pool: the round trip

The targets (from the pool issue) are printed next to the figures; nothing here
asserts them: on a shared machine they are measurements, not tests.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TextIO

from .. import config, machine, measure, watchdog, workloads
from ..joblib_backend import joblib_session
from ..measure import Measurement
from ..pool import WorkerPool

WORKERS = 2
POOLS = ("WorkerPool", "ProcessPoolExecutor", "multiprocessing.Pool")


@dataclass(frozen=True)
class Sizes:
    tiny_tasks: int
    map_items: int
    coarse_seconds: float
    latency_round_trips: int

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(tiny_tasks=3000, map_items=200_000, coarse_seconds=0.1,
                       latency_round_trips=50)
        return cls(tiny_tasks=20_000, map_items=1_000_000, coarse_seconds=0.25,
                   latency_round_trips=300)


# --- one adapter per pool, so every experiment treats them alike ---


class PoolUnderTest:
    """A started pool, with the few operations the benchmark needs."""

    def __init__(self, name: str, method: str, workers: int = WORKERS,
                 task_timeout: float | None = None) -> None:
        self.name, self.method, self.workers = name, method, workers
        context = multiprocessing.get_context(method)
        if name == "WorkerPool":
            self.pool: Any = WorkerPool(workers, mp_context=context, task_timeout=task_timeout)
        elif name == "ProcessPoolExecutor":
            self.pool = ProcessPoolExecutor(workers, mp_context=context,
                                            initializer=watchdog.worker_setup)
        elif name == "multiprocessing.Pool":
            self.pool = context.Pool(workers, initializer=watchdog.worker_setup)
        else:
            raise ValueError(f"unknown pool {name!r}; choose one of {', '.join(POOLS)}")

    @property
    def is_mp_pool(self) -> bool:
        return self.name == "multiprocessing.Pool"

    def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start one task; returns a Future (or an AsyncResult for multiprocessing.Pool)."""
        if self.is_mp_pool:
            return self.pool.apply_async(fn, args)
        return self.pool.submit(fn, *args)

    def one(self, fn: Callable[[int], Any], arg: int) -> Any:
        """Run one task and wait for its result."""
        if self.is_mp_pool:
            return self.pool.apply_async(fn, (arg,)).get()
        return self.pool.submit(fn, arg).result()

    def many(self, fn: Callable[[int], Any], args: list[int]) -> list[Any]:
        """One submission per task, results in order."""
        if self.is_mp_pool:
            return list(self.pool.imap(fn, args, chunksize=1))
        futures = [self.pool.submit(fn, arg) for arg in args]
        return [future.result() for future in futures]

    def warm_up(self) -> None:
        """The same for every pool: all workers started, then a few hundred round trips."""
        if self.is_mp_pool:
            self.pool.map(workloads.sleep_io, [20] * (2 * self.workers), chunksize=1)
        else:
            wait([self.pool.submit(workloads.sleep_io, 20) for _ in range(2 * self.workers)])
        self.many(workloads.noop, list(range(200)))

    def close(self) -> None:
        """Finish the work and stop the workers."""
        if self.is_mp_pool:
            self.pool.close()
            self.pool.join()
        else:
            self.pool.shutdown(wait=True)

    def terminate(self) -> None:
        """Stop as soon as each pool allows: ProcessPoolExecutor waits for running tasks."""
        if self.is_mp_pool:
            self.pool.terminate()
            self.pool.join()
        elif self.name == "WorkerPool":
            self.pool.terminate()
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- the experiments ---


def _record(experiment: str, executor: str, method: str | None, tasks: int, repeat: int,
            seconds: float, task_seconds: float = 0.0, workload: str = "noop") -> Measurement:
    return Measurement(experiment=experiment, executor=executor, workers=WORKERS,
                       workload=workload, task_seconds=task_seconds, tasks=tasks,
                       repeat=repeat, seconds=seconds, start_method=method,
                       mode=config.mode(), machine_id=machine.machine_id())


def tiny_and_latency(method: str, sizes: Sizes, repeats: int, say: Callable[[str], None]
                     ) -> list[Measurement]:
    """Per-task overhead (wall and parent CPU) and single-task latency, all three pools."""
    pools = {name: PoolUnderTest(name, method) for name in POOLS}
    records = []
    try:
        for pool in pools.values():
            pool.warm_up()
        arguments = list(range(sizes.tiny_tasks))
        for repeat, name in measure.interleaved(POOLS, repeats):
            pool = pools[name]
            wall, cpu = time.perf_counter(), time.process_time()
            pool.many(workloads.noop, arguments)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            records.append(_record("tiny", name, method, sizes.tiny_tasks, repeat, wall))
            records.append(_record("parent-cpu", name, method, sizes.tiny_tasks, repeat, cpu))
            start = time.perf_counter()
            for i in range(sizes.latency_round_trips):
                pool.one(workloads.noop, i)
            records.append(_record("latency", name, method, sizes.latency_round_trips, repeat,
                                   time.perf_counter() - start))
        say(f"  tiny tasks and latency ({method}) done")
    finally:
        for pool in pools.values():
            pool.close()
    return records


def coarse(method: str, sizes: Sizes, repeats: int, units: int, say: Callable[[str], None]
           ) -> list[Measurement]:
    """4 × workers coarse pure-Python tasks: serial in this process against each pool."""
    tasks = 4 * WORKERS
    pools = {name: PoolUnderTest(name, method) for name in POOLS}
    records = []
    try:
        for pool in pools.values():
            pool.warm_up()
        for repeat, name in measure.interleaved(("serial", *POOLS), repeats):
            start = time.perf_counter()
            if name == "serial":
                for _ in range(tasks):
                    workloads.python_loop(units)
            else:
                pools[name].many(workloads.python_loop, [units] * tasks)
            records.append(_record("coarse", name, None if name == "serial" else method,
                                   tasks, repeat, time.perf_counter() - start,
                                   sizes.coarse_seconds, "python"))
        say(f"  coarse tasks ({method}) done")
    finally:
        for pool in pools.values():
            pool.close()
    return records


def first_result(method: str, repeats: int, say: Callable[[str], None]) -> list[Measurement]:
    """Start a pool, run one tiny task: the time until its result is back (then close)."""
    records = []
    for repeat, name in measure.interleaved(POOLS, repeats):
        start = time.perf_counter()
        pool = PoolUnderTest(name, method)
        pool.one(workloads.noop, 0)
        seconds = time.perf_counter() - start
        pool.close()
        records.append(_record("first-result", name, method, 1, repeat, seconds))
    say(f"  time to first result ({method}) done")
    return records


def map_auto(methods: list[str], sizes: Sizes, repeats: int, say: Callable[[str], None]
             ) -> list[Measurement]:
    """WorkerPool.map(chunksize="auto") per start method against joblib's auto-batching."""
    from joblib import Parallel, delayed

    pools = {method: WorkerPool(WORKERS, mp_context=multiprocessing.get_context(method))
             for method in methods}
    session = contextlib.ExitStack()  # joblib's workers and temporary files, cleaned up below
    session.enter_context(joblib_session())
    joblib_runner = Parallel(n_jobs=WORKERS, backend="loky", batch_size="auto")
    contenders = [*(f"WorkerPool:{m}" for m in methods), "joblib"]
    records = []
    try:
        for pool in pools.values():
            list(pool.map(workloads.noop, range(1000), chunksize="auto"))
        joblib_runner(delayed(workloads.noop)(i) for i in range(1000))  # starts loky
        for repeat, name in measure.interleaved(contenders, repeats):
            start = time.perf_counter()
            if name == "joblib":
                joblib_runner(delayed(workloads.noop)(i) for i in range(sizes.map_items))
                executor, method = "joblib (loky)", "loky"
            else:
                method = name.split(":")[1]
                for _ in pools[method].map(workloads.noop, range(sizes.map_items),
                                           chunksize="auto"):
                    pass
                executor = "WorkerPool"
            records.append(_record("map-auto", executor, method, sizes.map_items, repeat,
                                   time.perf_counter() - start))
        say("  auto-chunked map done")
    finally:
        for pool in pools.values():
            pool.shutdown()
        session.close()
    return records


# --- the whole suite ---


def run(quick: bool = False, methods: list[str] | None = None, repeats: int = 5,
        progress: TextIO | None = None) -> dict[str, Any]:
    """Run every experiment; return the result document (records + summary)."""
    methods = methods or [config.start_method()]
    sizes = Sizes.for_mode(quick)

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"pool benchmark: {'quick' if quick else 'full'} mode, start methods "
        f"{', '.join(methods)}, {repeats} interleaved repeats, {WORKERS} workers")
    calibration = workloads.calibrate("python", budget_seconds=0.5 if quick else 1.0)
    units = calibration.units_for(sizes.coarse_seconds)
    records: list[Measurement] = []
    for method in methods:
        records += tiny_and_latency(method, sizes, repeats, say)
        records += coarse(method, sizes, repeats, units, say)
        records += first_result(method, repeats, say)
    records += map_auto(methods, sizes, repeats, say)
    card = machine.machine_card()
    return measure.result_document(
        "pool-benchmark", records, card.as_dict(), mode="quick" if quick else "full",
        workers=WORKERS, sizes=sizes.__dict__, summary=summarize(records, methods),
    )


def _median(records: list[Measurement], experiment: str, executor: str,
            method: str | None) -> float:
    values = [r.seconds / r.tasks for r in records if r.experiment == experiment
              and r.executor == executor and r.start_method == method]
    return statistics.median(values)


def summarize(records: list[Measurement], methods: list[str]) -> dict[str, Any]:
    """Medians per task, ratios, and whether each target was met, per start method."""
    summary: dict[str, Any] = {}
    joblib_per_item = _median(records, "map-auto", "joblib (loky)", "loky")
    for method in methods:
        tiny = {name: _median(records, "tiny", name, method) for name in POOLS}
        cpu = {name: _median(records, "parent-cpu", name, method) for name in POOLS}
        latency = {name: _median(records, "latency", name, method) for name in POOLS}
        first = {name: _median(records, "first-result", name, method) for name in POOLS}
        serial = _median(records, "coarse", "serial", None)
        speedup = {name: serial / _median(records, "coarse", name, method) for name in POOLS}
        per_item = _median(records, "map-auto", "WorkerPool", method)
        best_stdlib_first = min(first["ProcessPoolExecutor"], first["multiprocessing.Pool"])
        summary[method] = {
            "tiny_seconds_per_task": tiny,
            "parent_cpu_seconds_per_task": cpu,
            "latency_seconds": latency,
            "first_result_seconds": first,
            "coarse_speedup": speedup,
            "map_auto_seconds_per_item": {"WorkerPool": per_item, "joblib": joblib_per_item},
            "targets": {
                "tiny_vs_ProcessPoolExecutor": _target(
                    tiny["WorkerPool"] / tiny["ProcessPoolExecutor"], "<=", 0.2),
                "tiny_vs_Pool.imap": _target(
                    tiny["WorkerPool"] / tiny["multiprocessing.Pool"], "<=", 1.0),
                "map_auto_microseconds_per_item": _target(per_item * 1e6, "<=", 1.0),
                "map_auto_vs_joblib": _target(per_item / joblib_per_item, "<=", 0.5),
                "coarse_speedup_per_worker": _target(speedup["WorkerPool"] / WORKERS,
                                                     ">=", 0.95),
                "first_result_vs_best_stdlib": _target(
                    first["WorkerPool"] / best_stdlib_first, "<=", 1.1),
            },
        }
    return summary


def _target(value: float, relation: str, limit: float) -> dict[str, Any]:
    met = value <= limit if relation == "<=" else value >= limit
    return {"value": value, "target": f"{relation} {limit}", "met": met}


def report(document: dict[str, Any]) -> str:
    """The summary as text: figures per pool, then each target with its ratio."""
    lines = [f"Pool benchmark ({document['mode']} mode) on {document['machine']['cpu_model']}, "
             f"{document['machine']['usable_cpus']} usable CPUs, Python "
             f"{document['machine']['python']}, {document['workers']} workers"]
    for method, s in document["summary"].items():
        lines.append(f"\nstart method: {method}")
        lines.append(f"  {'':24}{'WorkerPool':>14}{'ProcessPool':>14}{'mp.Pool':>14}")

        def row(label: str, values: dict[str, float], scale: float, unit: str) -> str:
            cells = "".join(f"{values[name] * scale:>12.1f}{unit}" for name in POOLS)
            return f"  {label:<24}{cells}"

        lines.append(row("tiny task, wall", s["tiny_seconds_per_task"], 1e6, "µs"))
        lines.append(row("tiny task, parent CPU", s["parent_cpu_seconds_per_task"], 1e6, "µs"))
        lines.append(row("one task, round trip", s["latency_seconds"], 1e6, "µs"))
        lines.append(row("time to first result", s["first_result_seconds"], 1e3, "ms"))
        lines.append(row("coarse speedup", s["coarse_speedup"], 1, "× "))
        m = s["map_auto_seconds_per_item"]
        lines.append(f"  map(chunksize='auto'): {m['WorkerPool'] * 1e6:.3f} µs/item; "
                     f"joblib auto-batching: {m['joblib'] * 1e6:.3f} µs/item")
        for name, t in s["targets"].items():
            verdict = "met" if t["met"] else "NOT met"
            lines.append(f"  target {name:<34} {t['value']:8.3f} (want {t['target']}): "
                         f"{verdict}")
    return "\n".join(lines)
