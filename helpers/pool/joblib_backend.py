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

The bridge does what joblib's own multiprocessing backend does, and passes joblib's tests
of it (tests/test_joblib_conformance.py):

* a batch travels pickled as loky's do: by cloudpickle, so a function defined in a
  notebook or a script works under every start method, and with joblib's reducers, so
  an array over ``max_nbytes`` reaches the workers as a memory map in ``temp_folder``
  (a worker unpickles it in :func:`_run_batch`: workers import this module too);
* nested in a worker (daemonic processes cannot have children), below loky or below
  threads, ``Parallel`` runs sequentially, with a warning;
* ``initializer`` and ``initargs`` given to ``Parallel`` reach the pool;
* the pool holds one batch per worker (or ``max_pending``), the rest wait here: in a
  worker's pipe, a batch would wait behind a long one while another worker sat idle,
  which ``return_as="generator_unordered"`` must not do.
"""

from __future__ import annotations

import contextlib
import functools
import io
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import joblib
from joblib._memmapping_reducer import TemporaryResourcesManager, get_memmapping_reducers
from joblib._parallel_backends import FallbackToBackend
from joblib.externals.loky import process_executor
from joblib.externals.loky.backend import reduction
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
        _check_pool_options(pool_options)
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads)
        self.pool_options = pool_options
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()
        self._waiting: deque[tuple[Future, bytes]] = deque()  # batches not yet in the pool
        self._running = 0  # batches in the pool
        self._max_running = 1
        self._reducers: dict = {}
        self._temp_folders: TemporaryResourcesManager | None = None

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        where = self._nested_where()
        if where is not None:
            if n_jobs != 1:
                warnings.warn(f"WorkerPool-backed parallel loops cannot be nested {where}, "
                              "setting n_jobs=1", stacklevel=3)
            return 1
        if n_jobs < 0:
            return max(machine.usable_cpus() + 1 + n_jobs, 1)
        return n_jobs

    def _nested_where(self) -> str | None:
        """Where this loop runs, if it may not start processes there (as for multiprocessing)."""
        if multiprocessing.current_process().daemon:
            return "in a worker (daemonic processes cannot have children)"
        if process_executor._CURRENT_DEPTH > 0:
            return "below loky"
        if not (self.in_main_thread() or self.nesting_level == 0):
            return "below threads"
        return None

    def configure(self, n_jobs: int = 1, parallel: Any = None, prefer: str | None = None,
                  require: str | None = None, *, context: Any = None,
                  temp_folder: str | None = None, max_nbytes: int | None = 1_000_000,
                  mmap_mode: str = "r", verbose: int = 0, **pool_options: Any) -> int:
        """Start the pool; ``context`` (joblib passes its default) is ignored: the start
        method is ``mp_context``'s, or the course's."""
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        _check_pool_options(pool_options)
        options = {**self.pool_options, **pool_options}
        # max_pending is applied here, not by the pool: its submit would wait for room in
        # the thread that delivers the results, which is where joblib submits the next.
        self._max_running = min(n_jobs, options.pop("max_pending", None) or n_jobs)
        self._temp_folders = TemporaryResourcesManager(temp_folder)
        self._reducers, _ = get_memmapping_reducers(
            temp_folder_resolver=self._temp_folders.resolve_temp_folder_name,
            max_nbytes=max_nbytes, mmap_mode=mmap_mode, verbose=verbose,
            unlink_on_gc_collect=False)
        self._pool = WorkerPool(n_jobs, **options)
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Any, callback: Any = None) -> Future:
        future: Future = Future()
        if callback is not None:
            future.add_done_callback(callback)
        try:
            payload = _dumps(func, self._reducers)
        except Exception as error:  # raised, it would be lost when joblib submits from a callback
            failure = pickle.PicklingError(f"the task could not be pickled to send to a worker: "
                                           f"{type(error).__name__}: {error}")
            failure.__cause__ = error
            future.set_exception(failure)
            return future
        with self._lock:
            self._waiting.append((future, payload))
        self._feed_pool()
        return future

    def _feed_pool(self) -> None:
        """Hand waiting batches to the pool while a worker is free."""
        while True:
            with self._lock:
                if self._pool is None or not self._waiting or self._running >= self._max_running:
                    return
                future, payload = self._waiting.popleft()
                self._running += 1
                pool = self._pool
            try:
                task = pool.submit(_run_batch, payload)
            except Exception as error:  # the pool is broken, or was stopped meanwhile
                self._count_done(pool)
                future.set_exception(error)
            else:
                task.add_done_callback(functools.partial(self._batch_done, pool, future))

    def _count_done(self, pool: WorkerPool) -> None:
        with self._lock:
            if pool is self._pool:  # not a pool stopped since
                self._running -= 1

    def _batch_done(self, pool: WorkerPool, future: Future, task: Future) -> None:
        self._count_done(pool)
        self._feed_pool()  # first, so that a worker is not idle while joblib takes the result
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())

    def retrieve_result_callback(self, future: Future) -> Any:
        return pickle.loads(future.result())

    def terminate(self) -> None:
        self._stop(kill=False)
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self._stop(kill=True)
        if ensure_ready:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel,
                           **self.parallel._backend_kwargs)

    def _stop(self, kill: bool) -> None:
        """Stop the pool (``kill``: now), drop the waiting batches, remove the memory maps."""
        with self._lock:
            pool, self._pool = self._pool, None
            waiting = [future for future, _ in self._waiting]
            self._waiting.clear()
            self._running = 0
        if pool is not None and kill:
            pool.terminate()
        elif pool is not None:
            pool.shutdown(wait=True)
        for future in waiting:
            future.cancel()
        if self._temp_folders is not None:
            self._temp_folders._clean_temporary_resources()  # as joblib's pools do
            self._temp_folders = None


def _check_pool_options(options: dict[str, Any]) -> None:
    unknown = set(options) - set(POOL_OPTIONS)
    if unknown:
        raise TypeError(f"unknown WorkerPool option(s) {sorted(unknown)}; "
                        f"allowed: {', '.join(POOL_OPTIONS)}")


def _dumps(obj: Any, reducers: dict) -> bytes:
    """Pickle as joblib's loky backend does: cloudpickle, with joblib's reducers."""
    buffer = io.BytesIO()
    reduction.dump(obj, buffer, reducers=reducers)
    return buffer.getvalue()


@functools.cache
def _result_reducers() -> dict:
    """joblib's reducers for results: arrays backed by a memory map go back as one."""
    return get_memmapping_reducers()[1]


def _run_batch(payload: bytes) -> bytes:
    """In a worker: run one of joblib's batches; return its results, pickled."""
    return _dumps(pickle.loads(payload)(), _result_reducers())


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
