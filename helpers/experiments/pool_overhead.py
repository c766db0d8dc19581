"""What a task costs on each pool: WorkerPool, ProcessPoolExecutor, multiprocessing.Pool, joblib.

The measurements behind notebook 05's overhead figures and the pool benchmark
(:mod:`helpers.bench.pool_suite`, which runs them all and compares them with the targets).
Every pool runs the same work functions (module functions from ``helpers.core.workloads``),
with 2 workers, each pool warmed up the same way, repeats interleaved (A B C, B C A, …).

``tiny_and_latency``  N tiny tasks, one ``submit`` per task (``imap(chunksize=1)`` for
                      multiprocessing.Pool), and one task at a time on a warm pool
``map_auto``          ``WorkerPool.map(chunksize="auto")`` against joblib's auto-batching
``coarse``            4 × workers pure-Python tasks: speedup over running them in this process
``first_result``      start a pool, submit one task, get its result
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helpers.core import config, machine, measure, watchdog, workloads
from helpers.core.measure import Measurement
from helpers.experiments import executors
from helpers.pool import WorkerPool
from helpers.pool.joblib_backend import joblib_session

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
            self.pool: Any = executors.make_executor("WorkerPool", workers, method,
                                                     task_timeout=task_timeout)
        elif name == "ProcessPoolExecutor":
            self.pool = executors.make_executor("process", workers, method)
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
            executors.warm_up(self.pool, self.workers)
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
