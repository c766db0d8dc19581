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
    notebook 06       prefork_server          one listening socket, N forked workers (Unix)
    notebook 07       sum_in_shared_memory    SharedMemory: create, fill, hand over a name
    notebook 08       run_bounded             a semaphore around submit: backpressure
    notebook 09       run_on_dask             the same joblib line on a Dask LocalCluster

(Notebook 05 builds its pool step by step and shows each step's own code.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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


@contextlib.contextmanager
def prefork_server(workers: int) -> Iterator[tuple[str, int]]:
    """A pre-fork server in miniature: ``workers`` forked processes accept on ONE socket and
    answer each request with their pid; yields the address. Unix only (``os.fork``)."""
    if not hasattr(os, "fork"):
        raise OSError("os.fork is Unix-only; on Windows use prefork.PreforkServer (spawn)")
    listener = socket.create_server(("127.0.0.1", 0))  # bind and listen once, in the parent
    parent, children = os.getpid(), []
    try:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:  # the worker: a copy of the parent, holding the same socket
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's stop kills it
                    listener.settimeout(0.5)  # wake up now and then ...
                    while os.getppid() == parent:  # ... to exit once the parent is gone
                        try:
                            connection, _ = listener.accept()  # all workers share one queue
                        except TimeoutError:
                            continue
                        with connection, contextlib.suppress(OSError):  # a client hung up
                            connection.settimeout(5)  # nor can a silent one hold it for ever
                            connection.recv(65536)  # the request (one at a time, like gunicorn)
                            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n%d" % os.getpid())
                finally:
                    os._exit(0)  # never return into the parent's code
            children.append(pid)
        yield listener.getsockname()
    finally:
        listener.close()
        for pid in children:  # stop every worker and reap it: no zombie, no orphan
            os.kill(pid, signal.SIGTERM)  # (PreforkServer lets the request in flight finish)
            os.waitpid(pid, 0)


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


def run_on_dask(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """Notebook 04's joblib line, unchanged, on a Dask cluster of ``workers`` processes."""
    import logging

    from dask.distributed import Client, LocalCluster
    from joblib import Parallel, delayed, parallel_config

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR
                      ) as cluster, Client(cluster):  # the client joblib's "dask" backend uses
        with parallel_config(backend="dask"):  # only the backend changes
            return Parallel()(delayed(fn)(item) for item in items)


def run_bounded(pool: Executor, fn: Callable[[Any], Any], items: Sequence[Any],
                in_flight: int) -> list[Any]:
    """Submit with backpressure: at most ``in_flight`` tasks unfinished at once."""
    room = threading.BoundedSemaphore(in_flight)
    futures = []
    for item in items:
        room.acquire()  # wait here until a task finishes: this is the backpressure
        future = pool.submit(fn, item)
        future.add_done_callback(lambda _: room.release())  # a finished task makes room
        futures.append(future)
    return [future.result() for future in futures]
