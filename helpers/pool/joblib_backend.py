"""Run ``joblib.Parallel`` on the course's :class:`~helpers.pool.WorkerPool`.

``helpers.pool.parent`` stays standard library only; this module is the bridge to joblib::

    from helpers.pool import joblib_backend
    from joblib import Parallel, delayed, parallel_config

    joblib_backend.register()                      # once per kernel
    with parallel_config(backend="worker-pool", n_jobs=2):
        Parallel()(delayed(f)(x) for x in items)

joblib still does the batching (``batch_size="auto"``); the pool does the
processes, and brings its crash recovery, ``max_tasks_per_child`` and
``task_timeout`` (pass them to ``parallel_config`` as keyword arguments).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import joblib
from joblib._parallel_backends import FallbackToBackend
from joblib.parallel import AutoBatchingMixin, ParallelBackendBase, SequentialBackend

from helpers.core import machine
from helpers.pool import WorkerPool

BACKEND_NAME = "worker-pool"
POOL_OPTIONS = ("mp_context", "initializer", "initargs", "max_tasks_per_child", "max_pending",
                "task_timeout")


class WorkerPoolBackend(AutoBatchingMixin, ParallelBackendBase):
    """A joblib backend whose workers are a :class:`WorkerPool`."""

    supports_retrieve_callback = True
    default_n_jobs = 1

    def __init__(self, nesting_level: int | None = None, inner_max_num_threads: int | None = None,
                 **pool_options: Any) -> None:
        unknown = set(pool_options) - set(POOL_OPTIONS)
        if unknown:
            raise TypeError(f"unknown WorkerPool option(s) {sorted(unknown)}; "
                            f"allowed: {', '.join(POOL_OPTIONS)}")
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads)
        self.pool_options = pool_options
        self._pool: WorkerPool | None = None

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max(machine.usable_cpus() + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, **_: Any) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self._pool = WorkerPool(n_jobs, **self.pool_options)
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Any, callback: Any = None) -> Any:
        future = self._pool.submit(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future: Any) -> Any:
        return future.result()

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None
        if ensure_ready:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel)


def register(name: str = BACKEND_NAME) -> str:
    """Make ``parallel_config(backend=name)`` use WorkerPool. Returns the name."""
    joblib.register_parallel_backend(name, WorkerPoolBackend)
    return name


@contextlib.contextmanager
def joblib_session() -> Iterator[str]:
    """A block in which joblib keeps its temporary files (memory-mapped arrays) in a folder
    of ours; at the end, loky's workers are stopped and the folder is removed.

    joblib cleans up its own folders through a helper process that a restarted kernel
    kills, which would leave empty folders in /dev/shm behind; this cannot.
    """
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix="course-joblib-", dir=root)
    try:
        with joblib.parallel_config(temp_folder=folder):
            yield folder
    finally:
        stop_loky_workers()
        shutil.rmtree(folder, ignore_errors=True)


def stop_loky_workers() -> None:
    """joblib keeps its loky workers for reuse; an experiment leaves no process behind."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
