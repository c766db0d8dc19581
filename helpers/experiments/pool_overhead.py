"""What a task costs on each pool: WorkerPool next to its peers, on the same work.

The measurements behind notebook 05's overhead figures and the pool benchmark
(:mod:`helpers.bench.pool_suite`, which runs them all and compares them with the targets).
Every pool runs the same work functions (module functions from ``helpers.core.workloads``),
with 2 workers, each pool warmed up the same way, repeats interleaved (A B C, B C A, …).

The pools (``PEERS``): WorkerPool, ProcessPoolExecutor, multiprocessing.Pool, joblib's
loky executor (``joblib/loky``, always under loky's own start method, ``"loky"``), and the
optional peers mpire and pebble, measured only where they are installed
(:func:`installed_peers`).

``tiny_and_latency``  N tiny tasks, one submission per task (``imap(chunksize=1)`` for
                      multiprocessing.Pool and mpire), and one task at a time on a warm pool
                      (``round_trips``: in short blocks, the pools taking turns)
``map_auto``          ``WorkerPool.map(chunksize="auto")`` against joblib's auto-batching
``coarse``            4 × workers pure-Python tasks: speedup over running them in this process
``first_result``      start a pool, submit one task, get its result
``lazy_map_memory``   how much the parent's memory grows while it consumes a ``map`` over a
                      lazy iterable: WorkerPool (``max_pending``) and ProcessPoolExecutor
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from helpers.core import config, machine, measure, watchdog, workloads
from helpers.core.measure import Measurement
from helpers.experiments import executors
from helpers.pool import WorkerPool
from helpers.pool.joblib_backend import joblib_session

WORKERS = 2
#: The pools every course experiment compares (notebook 05 and the course benchmark).
POOLS = ("WorkerPool", "ProcessPoolExecutor", "multiprocessing.Pool")
LOKY = "joblib/loky"
#: The start method loky always uses: its own fork+exec of a fresh interpreter.
LOKY_METHOD = "loky"
#: Measured only when installed; never a dependency of the course.
OPTIONAL_PEERS = ("mpire", "pebble")
PEERS = (*POOLS, LOKY, *OPTIONAL_PEERS)
#: Pools whose API is multiprocessing.Pool's: apply_async and imap, AsyncResult.get().
_POOL_STYLE = ("multiprocessing.Pool", "mpire")

#: The lazy-map memory experiment: WorkerPool's bound, and ProcessPoolExecutor's chunks.
LAZY_MAX_PENDING = 1000
EAGER_CHUNKSIZE = 1000
RSS_EVERY_ITEMS = 1 << 14  # how often the parent's memory is sampled while it consumes


def installed_peers() -> tuple[str, ...]:
    """The optional peers that can be imported here."""
    return tuple(name for name in OPTIONAL_PEERS if importlib.util.find_spec(name) is not None)


def missing_peers() -> tuple[str, ...]:
    """The optional peers that are not installed here."""
    return tuple(name for name in OPTIONAL_PEERS if name not in installed_peers())


@dataclass(frozen=True)
class Sizes:
    tiny_tasks: int
    map_items: int
    coarse_seconds: float
    latency_round_trips: int
    lazy_map_items: int  # WorkerPool.map in the memory experiment
    eager_map_items: int  # ProcessPoolExecutor.map there: it holds every chunk at once
    map_seconds_limit: float  # a map in the memory experiment stops consuming after this

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if quick:
            return cls(tiny_tasks=3000, map_items=200_000, coarse_seconds=0.1,
                       latency_round_trips=50, lazy_map_items=1_000_000,
                       eager_map_items=1_000_000, map_seconds_limit=5.0)
        return cls(tiny_tasks=20_000, map_items=1_000_000, coarse_seconds=0.2,
                   latency_round_trips=1000, lazy_map_items=10_000_000,
                   eager_map_items=2_000_000, map_seconds_limit=60.0)


# --- one adapter per pool, so every experiment treats them alike ---


def _start_pool(name: str, method: str, workers: int, task_timeout: float | None) -> Any:
    """A started pool of kind ``name``; only WorkerPool takes ``task_timeout``."""
    if name == "WorkerPool":
        return executors.make_executor("WorkerPool", workers, method, task_timeout=task_timeout)
    if name == "ProcessPoolExecutor":
        return executors.make_executor("process", workers, method)
    if name == "multiprocessing.Pool":
        return multiprocessing.get_context(method).Pool(workers,
                                                        initializer=watchdog.worker_setup)
    if name == LOKY:
        if method != LOKY_METHOD:
            raise ValueError(f"{LOKY} starts its workers its own way: use start method "
                             f"{LOKY_METHOD!r}, not {method!r}")
        from joblib.externals import loky

        return loky.ProcessPoolExecutor(max_workers=workers, initializer=watchdog.worker_setup)
    if name == "mpire":
        import mpire

        return mpire.WorkerPool(n_jobs=workers, start_method=method, keep_alive=True)
    if name == "pebble":
        import pebble

        return pebble.ProcessPool(max_workers=workers, initializer=watchdog.worker_setup,
                                  context=multiprocessing.get_context(method))
    raise ValueError(f"unknown pool {name!r}; choose one of {', '.join(PEERS)}")


class PoolUnderTest:
    """A started pool, with the few operations the benchmark needs."""

    def __init__(self, name: str, method: str, workers: int = WORKERS,
                 task_timeout: float | None = None) -> None:
        self.name, self.method, self.workers = name, method, workers
        self.pool: Any = _start_pool(name, method, workers, task_timeout)

    @property
    def is_mp_pool(self) -> bool:
        """True for the pools with multiprocessing.Pool's API (apply_async, imap)."""
        return self.name in _POOL_STYLE

    def _mpire_options(self) -> dict[str, Any]:
        """mpire takes its worker initializer per call (the same one every time)."""
        return {"worker_init": watchdog.worker_setup} if self.name == "mpire" else {}

    def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start one task; returns a Future (or an AsyncResult for the Pool-style pools)."""
        if self.is_mp_pool:
            return self.pool.apply_async(fn, args, **self._mpire_options())
        if self.name == "pebble":
            return self.pool.submit(fn, None, *args)  # None: no timeout
        return self.pool.submit(fn, *args)

    def result(self, handle: Any) -> Any:
        """Wait for one started task's result."""
        return handle.get() if self.is_mp_pool else handle.result()

    def one(self, fn: Callable[[int], Any], arg: int) -> Any:
        """Run one task and wait for its result."""
        return self.result(self.start(fn, arg))

    def many(self, fn: Callable[[int], Any], args: list[int]) -> list[Any]:
        """One submission per task, results in order."""
        if self.name == "multiprocessing.Pool":
            return list(self.pool.imap(fn, args, chunksize=1))
        if self.name == "mpire":
            return list(self.pool.imap(fn, args, chunk_size=1, **self._mpire_options()))
        handles = [self.start(fn, arg) for arg in args]
        return [self.result(handle) for handle in handles]

    def warm_up(self) -> None:
        """The same for every pool: all workers started, then a few hundred round trips."""
        sleeps = [20] * (2 * self.workers)
        if self.name == "multiprocessing.Pool":
            self.pool.map(workloads.sleep_io, sleeps, chunksize=1)
        elif self.name == "mpire":  # a map first: mpire's imap fails after an apply_async
            self.pool.map(workloads.sleep_io, sleeps, chunk_size=1, **self._mpire_options())
        else:
            self.many(workloads.sleep_io, sleeps)
        self.many(workloads.noop, list(range(200)))

    def close(self) -> None:
        """Finish the work and stop the workers."""
        if self.name == "multiprocessing.Pool":
            self.pool.close()
            self.pool.join()
        elif self.name == "mpire":
            self.pool.stop_and_join()
        elif self.name == "pebble":
            self.pool.close()
            self.pool.join()
        else:
            self.pool.shutdown(wait=True)

    def terminate(self) -> None:
        """Stop as soon as each pool allows: ProcessPoolExecutor waits for running tasks."""
        if self.name == "multiprocessing.Pool":
            self.pool.terminate()
            self.pool.join()
        elif self.name in ("WorkerPool", "mpire"):
            self.pool.terminate()
        elif self.name == "pebble":
            self.pool.stop()
            self.pool.join()
        elif self.name == LOKY:
            self.pool.shutdown(wait=True, kill_workers=True)
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def started(names: Iterable[str], method: str) -> Iterator[dict[str, PoolUnderTest]]:
    """Start and warm up one pool of each kind; close them all afterwards."""
    pools: dict[str, PoolUnderTest] = {}
    try:
        for name in names:
            pools[name] = PoolUnderTest(name, method)
            pools[name].warm_up()
        yield pools
    finally:
        for pool in pools.values():
            pool.close()


# --- the experiments ---


def _record(experiment: str, executor: str, method: str | None, tasks: int, repeat: int,
            seconds: float, task_seconds: float = 0.0, workload: str = "noop") -> Measurement:
    return Measurement(experiment=experiment, executor=executor, workers=WORKERS,
                       workload=workload, task_seconds=task_seconds, tasks=tasks,
                       repeat=repeat, seconds=seconds, start_method=method,
                       mode=config.mode(), machine_id=machine.machine_id())


def tiny_and_latency(method: str, sizes: Sizes, repeats: int, say: Callable[[str], None],
                     pools: tuple[str, ...] = POOLS) -> list[Measurement]:
    """Per-task overhead (wall and parent CPU) and single-task latency, per pool."""
    records = []
    arguments = list(range(sizes.tiny_tasks))
    with started(pools, method) as running:
        for repeat, name in measure.interleaved(pools, repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            running[name].many(workloads.noop, arguments)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            records.append(_record("tiny", name, method, sizes.tiny_tasks, repeat, wall))
            records.append(_record("parent-cpu", name, method, sizes.tiny_tasks, repeat, cpu))
        for repeat in range(repeats):
            records += round_trips(running, method, sizes.latency_round_trips, repeat)
    say(f"  tiny tasks and latency ({method}) done")
    return records


#: The round trips of one repeat are taken in this many blocks, the pools taking turns.
LATENCY_BLOCKS = 10


def round_trips(running: dict[str, PoolUnderTest], method: str, trips: int, repeat: int
                ) -> list[Measurement]:
    """Each pool's time for ``trips`` single-task round trips on its warm workers.

    The trips are taken in ``LATENCY_BLOCKS`` blocks, the pools taking turns (in an order
    that rotates), so that a burst of noise on a shared machine, which can last a
    fraction of a second, falls on every pool alike rather than on one pool's repeat.
    """
    seconds = dict.fromkeys(running, 0.0)
    size = max(1, math.ceil(trips / LATENCY_BLOCKS))
    blocks = math.ceil(trips / size)
    for block, name in measure.interleaved(list(running), blocks):
        pool = running[name]
        start = time.perf_counter()
        for i in range(block * size, min((block + 1) * size, trips)):
            pool.one(workloads.noop, i)
        seconds[name] += time.perf_counter() - start
    return [_record("latency", name, method, trips, repeat, total)
            for name, total in seconds.items()]


def coarse(method: str, sizes: Sizes, repeats: int, units: int, say: Callable[[str], None],
           pools: tuple[str, ...] = POOLS) -> list[Measurement]:
    """4 × workers coarse pure-Python tasks: serial in this process against each pool."""
    tasks = 4 * WORKERS
    records = []
    with started(pools, method) as running:
        for repeat, name in measure.interleaved(("serial", *pools), repeats):
            start = time.perf_counter()
            if name == "serial":
                for _ in range(tasks):
                    workloads.python_loop(units)
            else:
                running[name].many(workloads.python_loop, [units] * tasks)
            records.append(_record("coarse", name, None if name == "serial" else method,
                                   tasks, repeat, time.perf_counter() - start,
                                   sizes.coarse_seconds, "python"))
    say(f"  coarse tasks ({method}) done")
    return records


def first_result(method: str, repeats: int, say: Callable[[str], None],
                 pools: tuple[str, ...] = POOLS) -> list[Measurement]:
    """Start a pool, run one tiny task: the time until its result is back (then close)."""
    records = []
    for repeat, name in measure.interleaved(pools, repeats):
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
                executor, method = "joblib (loky)", LOKY_METHOD
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


# --- memory: a map over a lazy iterable ---


@dataclass(frozen=True)
class MemoryGrowth:
    """How far the parent's resident memory (RSS) rose while it consumed one ``map``."""

    pool: str
    start_method: str
    items: int  # in the lazy iterable
    consumed: int  # results taken: fewer than ``items`` when the time limit stopped the map
    chunksize: int | str
    max_pending: int | None
    seconds: float
    seconds_limit: float
    baseline_bytes: int  # RSS with the pool started and warmed up, before the map
    growth_bytes: int  # highest RSS seen while consuming, less the baseline
    mode: str

    @property
    def growth_mb(self) -> float:
        return self.growth_bytes / 1e6

    @property
    def complete(self) -> bool:
        """True when every item's result came back within the time limit."""
        return self.consumed == self.items

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lazy_map_memory(method: str, sizes: Sizes, say: Callable[[str], None]
                    ) -> list[MemoryGrowth]:
    """The parent's memory growth over a lazy map: WorkerPool, then ProcessPoolExecutor.

    Each runs in a fresh interpreter, so that neither reuses memory the other (or an
    earlier experiment) already took from the system.
    """
    limit = sizes.map_seconds_limit
    growth = [
        _in_fresh_interpreter(_map_growth, "WorkerPool", method, sizes.lazy_map_items, limit),
        _in_fresh_interpreter(_map_growth, "ProcessPoolExecutor", method,
                              sizes.eager_map_items, limit),
    ]
    say(f"  lazy-map memory ({method}) done")
    return growth


def lazy_items(count: int) -> Iterator[int]:
    """``count`` integers from a generator: no length, nothing built up front."""
    yield from range(count)


def _map_growth(pool_name: str, method: str, items: int, seconds_limit: float
                ) -> MemoryGrowth:
    """Consume one map over ``lazy_items(items)``, sampling this process's RSS; stop
    taking results after ``seconds_limit``."""
    context = multiprocessing.get_context(method)
    if pool_name == "WorkerPool":
        pool: Any = WorkerPool(WORKERS, mp_context=context, max_pending=LAZY_MAX_PENDING)
        chunksize: int | str = "auto"
    else:  # ProcessPoolExecutor.map submits every chunk before it yields a result
        pool = ProcessPoolExecutor(WORKERS, mp_context=context,
                                   initializer=watchdog.worker_setup)
        chunksize = EAGER_CHUNKSIZE
    me = psutil.Process()
    try:
        list(pool.map(workloads.noop, range(10_000), chunksize=chunksize))  # warm up
        gc.collect()
        baseline = peak = me.memory_info().rss
        start = time.perf_counter()
        results = pool.map(workloads.noop, lazy_items(items), chunksize=chunksize)
        consumed = 0
        for consumed, _ in enumerate(results, 1):
            if consumed % RSS_EVERY_ITEMS == 0:
                peak = max(peak, me.memory_info().rss)
                if time.perf_counter() - start > seconds_limit:
                    break
        peak = max(peak, me.memory_info().rss)
        if hasattr(results, "close"):  # cancels what is in flight when the limit stopped it
            results.close()
        seconds = time.perf_counter() - start
    finally:
        pool.shutdown(cancel_futures=True)
    return MemoryGrowth(pool=pool_name, start_method=method, items=items, consumed=consumed,
                        chunksize=chunksize,
                        max_pending=LAZY_MAX_PENDING if pool_name == "WorkerPool" else None,
                        seconds=seconds, seconds_limit=seconds_limit, baseline_bytes=baseline,
                        growth_bytes=peak - baseline, mode=config.mode())


def _in_fresh_interpreter(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a newly spawned interpreter; its result comes back through a pipe."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_call_and_send, args=(sender, fn, args))
    process.start()
    sender.close()
    try:
        return receiver.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{fn.__name__}{args} died in its process "
                           f"(exit code {process.exitcode})") from None
    finally:
        receiver.close()
        process.join()


def _call_and_send(sender: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    sender.send(fn(*args))
    sender.close()
