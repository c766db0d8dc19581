"""The plain code behind the headline experiments: what you would write at work.

The experiments in this package add what a course needs (repeats, traces, spreads,
plots). Underneath, each one runs a few lines of standard-library or joblib code; the
notebooks show those lines with ``inspect.getsource`` beside the experiment, and the tests
run every function here, so what a learner reads is code that works. Worker functions
come from modules (``helpers.core.workloads``), never from a notebook cell, so each of
these runs under fork, forkserver and spawn.

    notebook 00, 03   time_on_processes       ProcessPoolExecutor.map, warmed up, timed
    notebook 01       offload                 await loop.run_in_executor(pool, fn, *args)
    notebook 02       time_on_threads         ThreadPoolExecutor.map, the same job
    notebook 04       run_with_joblib         Parallel(n_jobs)(delayed(fn)(x) for x in xs)
    notebook 07       sum_in_shared_memory    SharedMemory: create, fill, hand over a name
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any


def time_on_processes(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
                      chunksize: int = 1) -> float:
    """Seconds to run ``fn`` on every item with ``workers`` processes (start-up not timed)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fn, items[:workers]))  # start every worker first: not part of the job
        start = time.perf_counter()
        list(pool.map(fn, items, chunksize=chunksize))
        return time.perf_counter() - start


def time_on_threads(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> float:
    """The same job on ``workers`` threads of this process."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        start = time.perf_counter()
        list(pool.map(fn, items))
        return time.perf_counter() - start


async def offload(pool: Executor, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in ``pool`` while the event loop goes on serving everyone else."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, fn, *args)


def run_with_joblib(fn: Callable[[Any], Any], items: Sequence[Any], n_jobs: int) -> list[Any]:
    """joblib's one line: loky worker processes by default, results in order."""
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(fn)(item) for item in items)


def sum_in_shared_memory(data: bytes, pool: Executor) -> int:
    """Put ``data`` in shared memory once; a worker reads it by name (no pickling of it)."""
    from multiprocessing import shared_memory

    from helpers.tasks import transfer

    segment = shared_memory.SharedMemory(create=True, size=len(data))
    try:
        segment.buf[:len(data)] = data
        return pool.submit(transfer.checksum_segment, segment.name, len(data)).result()
    finally:
        segment.close()
        segment.unlink()  # its creator removes it, whatever happened
