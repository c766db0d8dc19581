"""Notebook 05's experiments: WorkerPool next to the standard library's pools.

Three kinds, each returning plain data for plots and tables:

``timeline``      one job on one pool (``map`` with a chunk size), every task traced
``overhead``      the pool benchmark's tiny-task and auto-map experiments, quick mode
``fault_demo``    one injected fault (a killed worker, an unpicklable argument, a task
                  that overruns) and what happened to the faulty task, to the others,
                  and to the pool afterwards
``check_replace`` a learner's step-4 pool (its ``_replace``): one worker killed, then a job
                  with a crashing task, each under a time limit; the pool is always stopped
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections import Counter
from concurrent.futures import TimeoutError as FuturesTimeoutError
from dataclasses import dataclass, field
from multiprocessing import TimeoutError as mp_TimeoutError
from typing import Any

import psutil

from helpers.core import config, workloads
from helpers.core.measure import Measurement
from helpers.core.trace import TaskRecord, relative_to, trace_task
from helpers.experiments import pool_overhead
from helpers.experiments.pool_overhead import POOLS, PoolUnderTest
from helpers.tasks import faults

FAULTS = ("kill a worker", "unpicklable argument", "task overruns")


@dataclass
class TimelineResult:
    """One job on one pool: wall time and a record per task."""

    pool: str
    workload: str
    task_seconds: float
    tasks: int
    chunksize: int
    workers: int
    start_method: str
    seconds: float
    records: list[TaskRecord] = field(default_factory=list)


def timeline(pool: str, *, workload: str = "python", task_seconds: float = 0.01,
             tasks: int = 40, workers: int = 2, chunksize: int = 1,
             start_method: str | None = None,
             calibration: workloads.Calibration | None = None) -> TimelineResult:
    """Run ``tasks`` tasks of ``task_seconds`` through ``pool.map(..., chunksize)``, traced.

    The pool is started and warmed up before the clock starts.
    """
    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is not one of: {', '.join(POOLS)}")
    if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
    if not 1 <= workers <= 64:
        raise ValueError(f"workers must be 1 to 64, got {workers!r}")
    method = start_method or config.start_method()
    if calibration is None or calibration.workload != workload:
        calibration = workloads.calibrate(workload, budget_seconds=config.budget(0.5, 0.2))
    units = calibration.units_for(task_seconds)
    under_test = PoolUnderTest(pool, method, workers)
    try:
        under_test.warm_up()
        start = time.perf_counter()
        task = functools.partial(trace_task, workloads.get(workload).function, units, start)
        records = list(under_test.pool.map(task, range(tasks), chunksize=chunksize))
        seconds = time.perf_counter() - start
    finally:
        under_test.close()
    return TimelineResult(pool, workload, task_seconds, tasks, chunksize, workers, method,
                          seconds, relative_to(records, start))


def overhead(start_method: str | None = None, repeats: int = 3) -> list[Measurement]:
    """The pool benchmark's tiny-task and auto-map experiments, in quick mode."""
    method = start_method or config.start_method()
    sizes = pool_overhead.Sizes.for_mode(quick=True)
    records = pool_overhead.tiny_and_latency(method, sizes, repeats, say=lambda _: None)
    records += pool_overhead.map_auto([method], sizes, repeats, say=lambda _: None)
    return records


# --- fault injection ---


def fault_demo(pool: str, fault: str, start_method: str | None = None) -> dict[str, str]:
    """Inject ``fault`` into ``pool`` among four ordinary tasks; report what happened.

    Returns one table row: how the five tasks ended, and whether the pool still
    serves new tasks afterwards.
    """
    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is not one of: {', '.join(POOLS)}")
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r} is not one of: {', '.join(FAULTS)}")
    method = start_method or config.start_method()
    before = _children()
    timeout = 0.5 if fault == "task overruns" else None  # only WorkerPool has task_timeout
    under_test = PoolUnderTest(pool, method, task_timeout=timeout)
    try:
        under_test.warm_up()
        # WorkerPool names its workers; for the others, new descendants without children.
        workers = (sorted(under_test.pool.worker_pids()) if pool == "WorkerPool"
                   else sorted(_children() - before))
        handles = _inject(under_test, fault, workers)
        patience = 1.0 if fault == "task overruns" else 3.0  # how long the caller waits
        outcomes = Counter(_outcome(handle, patience) for handle in handles)
        afterwards = _still_serves(under_test)
    finally:
        under_test.terminate()
    return {
        "pool": pool,
        "fault": fault,
        "the_5_tasks": ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())),
        "afterwards": afterwards,
    }


def _inject(pool: PoolUnderTest, fault: str, workers: list[int]) -> list[Any]:
    """Start the faulty task among four ordinary ones; return the five handles."""
    if fault == "kill a worker":
        handles = [pool.start(faults.sleep_for, 0.5) for _ in range(5)]
        time.sleep(0.2)
        os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer does
        return handles
    if fault == "unpicklable argument":
        faulty = pool.start(id, _Unpicklable())
    else:  # "task overruns": 2 s of stuck work where 0.5 s is allowed
        faulty = pool.start(faults.spin_for, 2.0)
    return [faulty] + [pool.start(faults.sleep_for, 0.05) for _ in range(4)]


def _outcome(handle: Any, timeout: float) -> str:
    """'ok', the exception's type name, or 'lost' when no result came in ``timeout``."""
    try:
        handle.get(timeout) if hasattr(handle, "get") else handle.result(timeout)
    except Exception as error:  # reported, not raised
        if type(error) in (FuturesTimeoutError, TimeoutError, mp_TimeoutError):
            return f"no result after {timeout:g} s (still running, or lost)"
        return type(error).__name__
    return "ok"


def _still_serves(pool: PoolUnderTest) -> str:
    try:
        handle = pool.start(abs, -1)
        result = handle.get(5) if hasattr(handle, "get") else handle.result(5)
    except Exception as error:
        return f"broken ({type(error).__name__})"
    return "serves new tasks" if result == 1 else "wrong result"


class _Unpicklable:
    """An argument that refuses to be pickled, like a lock, a socket or an open file."""

    def __reduce__(self):
        raise TypeError("cannot pickle this object (it stands for a lock or a socket)")


def _children() -> set[int]:
    """This process's pool workers: its descendants that have no children of their own.

    That leaves out the process workers are forked from under forkserver (multiprocessing's
    fork server), and the resource tracker is not a worker either. (WorkerPool's own fork
    server has no children until it forks a worker: ask WorkerPool for its workers.)
    """
    workers = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.children() or "resource_tracker" in " ".join(_cmdline(child)):
                continue
        except psutil.Error:
            continue
        workers.add(child.pid)
    return workers


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


# --- a learner's crash handling (exercise 05.3) ---


@dataclass
class ReplaceCheck:
    """What a learner's ``CrashSafePool._replace`` did with one dead worker, then a job."""

    problem: str = ""  # empty when everything below held
    task_error: BaseException | None = None  # what the dead worker's future got
    dead_still_listed: bool = False
    replacement_alive: bool = False
    job_results: list[Any] = field(default_factory=list)
    crashed_task_error: BaseException | None = None


def check_replace(pool_class: type, start_method: str | None = None,
                  timeout: float = 20.0) -> ReplaceCheck:
    """Kill one worker of ``pool_class(2)``, call its ``_replace`` (in a thread, with a time
    limit), then run a job whose second task exits its worker. Every process the pool
    started is killed at the end, whatever the learner's code did."""
    import threading
    from concurrent.futures import Future

    from helpers.tasks import faults

    check = ReplaceCheck()
    pool = pool_class(2, start_method)
    started: list[Any] = [w["process"] for w in pool._workers]
    try:
        dead = pool._workers[0]
        dead["process"].kill()
        dead["process"].join(5)
        dead["task"] = 0
        futures = [Future()]
        outcome: list[BaseException] = []

        def replace() -> None:
            try:
                pool._replace(dead, futures)
            except BaseException as error:  # shown to the learner
                outcome.append(error)

        thread = threading.Thread(target=replace, daemon=True)
        thread.start()
        thread.join(timeout)
        started += [w["process"] for w in pool._workers]
        if thread.is_alive():
            check.problem = f"`_replace` had not returned after {timeout:g} s"
            return check
        if outcome:
            check.problem = f"`_replace` raised {type(outcome[0]).__name__}: {outcome[0]}"
            return check
        check.task_error = futures[0].exception(0) if futures[0].done() else None
        check.dead_still_listed = any(w is dead for w in pool._workers)
        check.replacement_alive = all(w["process"].is_alive() for w in pool._workers)
        if check.task_error is None or check.dead_still_listed or not check.replacement_alive:
            return check
        results: list[Future] = []
        job = threading.Thread(target=lambda: results.extend(
            pool.run(faults.exit_or_report_pid, [None, 3, None, None])), daemon=True)
        job.start()
        job.join(timeout)
        started += [w["process"] for w in pool._workers]
        if job.is_alive() or len(results) != 4:
            check.problem = f"a job with one crashing task had not finished after {timeout:g} s"
            return check
        check.crashed_task_error = results[1].exception(0)
        check.job_results = [f.result(0) for i, f in enumerate(results) if i != 1]
        return check
    finally:
        _disarm(pool)
        started += [w["process"] for w in pool._workers]
        for process in started:
            if process.is_alive():
                process.kill()
            process.join(5)


def _disarm(pool: Any) -> None:
    """Make a learner's pool loop end, if a thread is still running it: no worker holds a
    task any more (the loop's condition), and starting a replacement raises."""
    def refuse() -> None:
        raise RuntimeError("stopped by the exercise checker")

    pool._start = refuse
    for worker in pool._workers:
        worker["task"] = None
