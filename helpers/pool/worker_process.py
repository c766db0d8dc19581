"""The worker side of :class:`helpers.pool.WorkerPool`: what runs in each worker process.

One worker is one loop over its own pipe::

    set up (ignore SIGINT, exit when the parent dies, run the initializer)
    repeat until told to stop, or until max_tasks_per_child tasks are done:
        receive a batch: [(fn, args, kwargs), ...]       (one pickle for the batch)
        run each task, noting when it started and finished
        send back a BatchResults: results, errors with their tracebacks, times

It imports as little as possible, because every worker imports it at start-up
(under spawn and forkserver, in a brand-new interpreter). Standard library only.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import Any

from helpers.core import watchdog


def run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> tuple[list[Any], float]:
    """Run ``fn`` over a chunk of argument tuples; return the results and the time taken."""
    start = time.perf_counter()
    results = [fn(*args) for args in chunk]
    return results, time.perf_counter() - start


def run_task(fn, args, kwargs) -> tuple[bool, Any, str | None]:
    """Run one task: (ok, value or exception, traceback text or None)."""
    try:
        return True, fn(*args, **kwargs), None
    except BaseException as error:  # everything goes back to the caller
        return False, error, format_exception(error)


class BatchResults:
    """What a worker sends back for one batch, column by column (few objects per task)."""

    __slots__ = ("values", "errors", "started", "finished")

    def __init__(self) -> None:
        self.values: list[Any] = []  # result per task (None where the task failed)
        self.errors: dict[int, tuple[BaseException, str]] = {}  # index -> (error, traceback)
        self.started: list[float] = []
        self.finished: list[float] = []

    def __getstate__(self):
        return self.values, self.errors, self.started, self.finished

    def __setstate__(self, state) -> None:
        self.values, self.errors, self.started, self.finished = state

    def make_picklable(self) -> None:
        """Replace each result or exception that cannot be pickled by an error saying so."""
        for index, value in enumerate(self.values):
            if index not in self.errors and not _pickles(value):
                self.values[index] = None
                self.errors[index] = (RuntimeError(
                    f"the task's result could not be pickled: {_pickle_error(value)}"), "")
        for index, (error, text) in list(self.errors.items()):
            if not _pickles(error):
                self.errors[index] = (RuntimeError(
                    f"the task raised {error!r}, which could not be pickled: "
                    f"{_pickle_error(error)}"), text)


def _pickles(value: Any) -> bool:
    return _pickle_error(value) is None


def _pickle_error(value: Any) -> str | None:
    try:
        pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def worker_main(conn, initializer, initargs, max_tasks) -> None:
    """A worker: set up, then run batches from ``conn`` until told to stop."""
    watchdog.worker_setup()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as error:
            text = format_exception(error)
            conn.send_bytes(pickle.dumps(("init-failed", f"{type(error).__name__}: {error}",
                                          text)))
            return
    done = 0
    while max_tasks is None or done < max_tasks:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            batch = pickle.loads(message)
        except Exception as error:  # e.g. a function this process cannot import
            conn.send_bytes(pickle.dumps(("unreadable", f"{type(error).__name__}: {error}")))
            continue
        if batch is None:
            return
        results = BatchResults()
        for index, (fn, args, kwargs) in enumerate(batch):
            results.started.append(time.perf_counter())
            ok, value, text = run_task(fn, args, kwargs)
            results.finished.append(time.perf_counter())
            if ok:
                results.values.append(value)
            else:
                results.values.append(None)
                results.errors[index] = (value, text)
        done += len(batch)
        try:
            payload = pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
        except Exception:  # find the culprits, keep the rest
            results.make_picklable()
            payload = pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(payload)


def format_exception(error: BaseException) -> str:
    """The exception's traceback as text (``traceback`` is imported only when needed)."""
    import traceback

    return "".join(traceback.format_exception(error))
