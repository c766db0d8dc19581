"""The worker side of :class:`helpers.pool.WorkerPool`: what runs in each worker process.

One worker is one loop over its own pipe::

    set up (ignore SIGINT, exit when the parent dies, run the initializer)
    repeat until Stop, max_tasks_per_child tasks, or max_memory_per_child bytes of growth:
        receive a Batch (one pickle for the whole batch); note "reading" on the board
        run each task, noting on the board which one is running and since when
        send back BatchResults: results, errors with their tracebacks, times
        look at the pipe, busy, for up to idle_spin seconds before sleeping in the next read

It imports as little as possible, because every worker imports it at start-up
(under spawn and forkserver, in a brand-new interpreter). Standard library only.
"""

from __future__ import annotations

import os
import pickle
import select
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from helpers.core import watchdog
from helpers.pool.messages import (
    FINISHED,
    READING,
    Batch,
    BatchResults,
    InitFailed,
    ProgressBoard,
    Stop,
    Unreadable,
)

#: A worker that has sent its results keeps looking at its pipe this long (seconds),
#: busy, before it sleeps in a blocking read. A caller that waits for each result and
#: then submits the next task at once can get it there within that time, and a worker
#: that finds it there skips a wake-up from sleep, which on a virtual machine can take
#: tens of microseconds. The cost is at most this much CPU per batch. The pool turns
#: it off (``parent.idle_spin_seconds``) where it may keep only one CPU busy: there the
#: spinning worker would hold up the very parent it waits for. What it gained on the
#: 2-vCPU reference VM is in data/README.md (the ``pool-2cpu-amd-epyc-16`` row and after).
IDLE_SPIN_SECONDS = 0.0002


def run_chunk(fn: Callable[..., object], chunk: list[tuple[object, ...]]
              ) -> tuple[list[object], float]:
    """Run ``fn`` over a chunk of argument tuples; return the results and the time taken."""
    start = time.perf_counter()
    results = [fn(*args) for args in chunk]
    return results, time.perf_counter() - start


def worker_main(conn, board: ProgressBoard, slot: int, initializer, initargs,
                max_tasks: int | None, max_memory: int | None, idle_spin: float) -> None:
    """A worker: set up, then run batches from ``conn`` until told to stop."""
    watchdog.worker_setup()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as error:
            import logging  # as ProcessPoolExecutor's workers do: say so where it happened

            logging.getLogger("concurrent.futures").critical("Exception in initializer:",
                                                             exc_info=True)
            conn.send_bytes(pickle.dumps(InitFailed(f"{type(error).__name__}: {error}",
                                                    format_exception(error))))
            return
    board.ready(slot)
    # max_memory_per_child bounds *growth*: a worker forked from a big parent starts with
    # the parent's pages resident, which are not this worker's to answer for.
    baseline = resident_bytes() if max_memory is not None else 0
    has_message = message_check(conn)
    done = seq = 0
    while max_tasks is None or done < max_tasks:
        try:
            if idle_spin > 0 and seq > 0:  # after a batch: the next may be on its way
                spin_briefly(has_message, idle_spin)
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent has gone
        seq += 1
        outcome = run_batch(data, seq, board, slot,
                            None if max_memory is None else baseline + max_memory)
        del data
        if outcome is None:
            return  # Stop
        payload, tasks, retiring = outcome
        del outcome
        conn.send_bytes(payload)
        done += tasks
        del payload  # let go of the results before waiting for the next batch
        if retiring:
            return


def message_check(conn: Connection) -> Callable[[], bool]:
    """A cheap "is a message waiting on ``conn``?", for ``spin_briefly``.

    On Linux ``conn.poll()`` builds a poll set on every call (7 µs a look on the 2-vCPU
    reference VM); one ``select.poll`` object made here answers in under 1 µs there.
    Windows has no ``select.poll``: there it is ``conn.poll``.
    """
    if not hasattr(select, "poll"):
        return conn.poll
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)

    def has_message() -> bool:
        return bool(poller.poll(0))  # also true once the pipe is closed: the read then ends

    return has_message


def spin_briefly(has_message: Callable[[], bool], seconds: float) -> None:
    """Ask ``has_message()`` over and over, never sleeping, until it says yes or
    ``seconds`` have passed. Reads nothing: the caller's read that follows does."""
    deadline = time.perf_counter() + seconds
    while not has_message() and time.perf_counter() < deadline:
        pass


def run_batch(data: bytes, seq: int, board: ProgressBoard, slot: int, max_memory: int | None
              ) -> tuple[bytes, int, bool] | None:
    """Unpickle one message and run it: (reply, tasks run, retiring), or None for Stop.

    Everything the batch made (arguments, results) is local here, so it is freed
    when this returns: nothing stays referenced in the worker between batches.
    """
    board.write(slot, seq, READING)
    try:
        message = pickle.loads(data)
    except BaseException as error:  # a function this process cannot import, SystemExit...
        return pickle.dumps(Unreadable(seq, f"{type(error).__name__}: {error}",
                                       format_exception(error))), 0, False
    if isinstance(message, Stop):
        return None
    assert isinstance(message, Batch)
    results = BatchResults(seq)
    for index, (fn, args, kwargs) in enumerate(message.tasks):
        board.write(slot, seq, index)
        results.started.append(time.perf_counter())
        try:
            value = fn(*args, **kwargs)
        except BaseException as error:  # everything goes back to the caller
            results.values.append(None)
            results.errors[index] = (error, format_exception(error))
        else:
            results.values.append(value)
        results.finished.append(time.perf_counter())
        value = fn = args = kwargs = None
    board.write(slot, seq, FINISHED)
    results.retiring = max_memory is not None and resident_bytes() > max_memory
    return pickle_results(results), len(message.tasks), results.retiring


def pickle_results(results: BatchResults) -> bytes:
    """Pickle the results; a result or exception that will not pickle is replaced by the
    error pickling raised (as ``ProcessPoolExecutor`` does), with the task's traceback."""
    try:
        return pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
    except BaseException:  # find the culprits, keep the rest
        pass
    for index, value in enumerate(results.values):
        if index not in results.errors:
            problem = _pickling_problem(value)
            if problem is not None:
                results.values[index] = None
                results.errors[index] = (problem, format_exception(problem))
    for index, (error, text) in list(results.errors.items()):
        problem = _pickling_problem(error)
        if problem is not None:
            results.errors[index] = (RuntimeError(
                f"the task raised {type(error).__name__}: {error}, which could not be "
                f"pickled to send back: {type(problem).__name__}: {problem}"), text)
    return pickle.dumps(results, pickle.HIGHEST_PROTOCOL)


def _pickling_problem(value: object) -> BaseException | None:
    """The exception pickling ``value`` raises (itself picklable), or None."""
    try:
        pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except BaseException as error:
        error.add_note("(raised while pickling the task's result to send it back)")
        try:
            pickle.dumps(error, pickle.HIGHEST_PROTOCOL)
        except BaseException:
            return RuntimeError(f"the task's result could not be pickled: "
                                f"{type(error).__name__}: {error}")
        return error
    return None


def resident_bytes() -> int:
    """This process's resident memory now (Linux, Windows) or at its peak (macOS, BSD)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return _windows_working_set()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _windows_working_set() -> int:
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD),
                    *[(name, ctypes.c_size_t) for name in (
                        "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                        "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                        "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]]

    counters = Counters()
    counters.cb = ctypes.sizeof(counters)
    process = ctypes.windll.kernel32.GetCurrentProcess()
    ctypes.windll.psapi.GetProcessMemoryInfo(process, ctypes.byref(counters), counters.cb)
    return counters.WorkingSetSize


def format_exception(error: BaseException) -> str:
    """The exception's traceback as text (``traceback`` is imported only when needed)."""
    import traceback

    return "".join(traceback.format_exception(error))
