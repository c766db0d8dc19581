"""Notebook 08's experiments (recycling, timeouts, backpressure, observability) and 08b's (advice).

Each function starts its own pool, measures one production problem, stops the pool
(``with`` blocks: nothing outlives the call) and returns plain data for a plot::

    recycling(max_tasks_per_child)  leaking tasks ──> (task, worker pid, RSS) rows
    thread_timeout() / pool_timeout()  stuck work ──> what a timeout really stops
    backpressure(bounded)           a fast producer ──> parent memory, queue depth over time
    observed_job()                  a mixed job on WorkerPool ──> trace() ──> summarise()
    check_advice(cases, model)      advise() against measured runs of the same cases
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeoutError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core import config, machine, measure, paths, validate, workloads
from helpers.core.trace import TaskRecord
from helpers.experiments import advisor, executors
from helpers.pool import TaskTimeout, WorkerPool
from helpers.tasks import faults, production

# --- recycling: a task that leaks, with and without max_tasks_per_child ---


def recycling(max_tasks_per_child: int | None, tasks: int = 40, leak_mib: float = 4.0,
              workers: int = 2) -> list[dict[str, Any]]:
    """Run ``tasks`` leaking tasks; one row per task: its number, worker pid, RSS after it."""
    units = workloads.calibrate("python", budget_seconds=0.1).units_for(0.005)
    rows = []
    with WorkerPool(workers, max_tasks_per_child=max_tasks_per_child) as pool:
        futures = [pool.submit(production.leaky_task, leak_mib, units)
                   for _ in range(tasks)]
        for number, future in enumerate(futures):
            pid, rss = future.result()
            rows.append({"task": number, "pid": pid, "rss_mib": rss,
                         "max_tasks_per_child": max_tasks_per_child,
                         "start_method": config.start_method()})
    return rows


def peak_growth_mib(rows: list[dict[str, Any]]) -> float:
    """The largest growth of any one worker above its own first reading (MiB)."""
    first: dict[int, float] = {}
    growth = 0.0
    for row in rows:
        first.setdefault(row["pid"], row["rss_mib"])
        growth = max(growth, row["rss_mib"] - first[row["pid"]])
    return growth


# --- timeouts: a thread cannot be stopped, a process can ---


def thread_timeout(stuck_seconds: float = 1.0, timeout: float = 0.2) -> dict[str, Any]:
    """``future.result(timeout=)`` on a thread: the caller stops waiting, the work does not."""
    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(faults.spin_for, stuck_seconds)
    try:
        future.result(timeout=timeout)
        raised = None
    except FuturesTimeoutError as error:
        raised = type(error).__name__
    gave_up_after = time.perf_counter() - start
    cancelled = future.cancel()  # False: it is running, and threads cannot be interrupted
    pool.shutdown(wait=True)  # the interpreter would wait here too, at exit
    ended = round(time.perf_counter() - start, 3)
    return {"way": "thread + result(timeout)", "raised": raised,
            "gave_up_after_s": round(gave_up_after, 3),
            "cancel_worked": cancelled,
            "stuck_ended_after_s": ended, "next_task_after_s": ended,
            "stuck_seconds": stuck_seconds, "gil_enabled": machine.gil_enabled()}


def pool_timeout(stuck_seconds: float = 1.0, timeout: float = 0.2) -> dict[str, Any]:
    """``WorkerPool(task_timeout=)``: the worker running the stuck task is killed and replaced."""
    with WorkerPool(1, task_timeout=timeout) as pool:
        before = pool.worker_pids()
        start = time.perf_counter()
        stuck = pool.submit(faults.spin_for, stuck_seconds)
        after_it = pool.submit(workloads.noop)
        try:
            stuck.result()
            raised = None
        except TaskTimeout as error:
            raised = type(error).__name__
        failed_after = time.perf_counter() - start
        after_it.result()
        next_done = time.perf_counter() - start
        replaced = pool.worker_pids() != before
    return {"way": "WorkerPool(task_timeout)", "raised": raised,
            "gave_up_after_s": round(failed_after, 3),
            "cancel_worked": None, "stuck_ended_after_s": round(failed_after, 3),
            "next_task_after_s": round(next_done, 3),
            "worker_replaced": replaced, "stuck_seconds": stuck_seconds,
            "start_method": config.start_method()}


#: The columns notebook 08 shows for the two timeout rows (the rest is recorded, not shown).
TIMEOUT_COLUMNS = ("way", "raised", "gave_up_after_s", "cancel_worked", "stuck_ended_after_s",
                   "next_task_after_s", "worker_replaced")


# --- backpressure: an unbounded producer against a bounded one ---


def backpressure(bounded: bool, tasks: int | None = None, payload_mib: float = 1.0,
                 task_seconds: float = 0.01, workers: int | None = None,
                 interval: float = 0.02, bound: int | None = None) -> dict[str, Any]:
    """A producer submits ``tasks`` tasks, each carrying a payload, as fast as it can.

    Unbounded: every task (and its payload) waits in the parent. Bounded: a semaphore
    lets at most ``bound`` (by default ``2 × workers``) be unfinished; the producer waits
    for room. A sampler thread records the parent's RSS and the number of unfinished
    tasks over time.
    """
    workers = workers or min(2, machine.usable_cpus())
    tasks = tasks or int(config.budget(160, 80))
    bound = 2 * workers if bound is None else bound
    validate.whole_number("bound", bound, 1, 100_000)
    units = workloads.calibrate("python", budget_seconds=0.1).units_for(task_seconds)
    limit = threading.BoundedSemaphore(bound) if bounded else None
    unfinished = 0
    lock = threading.Lock()
    samples: list[dict[str, float]] = []
    done = threading.Event()

    def finished(_future: Any) -> None:
        nonlocal unfinished
        with lock:
            unfinished -= 1
        if limit is not None:
            limit.release()

    def sample(start: float) -> None:
        while not done.is_set():
            samples.append({"t": time.perf_counter() - start, "unfinished": unfinished,
                            "rss_mib": production.rss_mib()})
            done.wait(interval)

    with executors.make_executor("process", workers, None) as pool:
        executors.warm_up(pool, workers)
        baseline = production.rss_mib()
        start = time.perf_counter()
        sampler = threading.Thread(target=sample, args=(start,), daemon=True)
        sampler.start()
        futures = []
        for _ in range(tasks):
            if limit is not None:
                limit.acquire()  # wait for room: this is the backpressure
            payload = b"p" * int(payload_mib * 2**20)  # a fresh payload per task
            with lock:
                unfinished += 1
            future = pool.submit(production.work_on_payload, payload, units)
            future.add_done_callback(finished)
            futures.append(future)
            del payload
        submitted_after = time.perf_counter() - start
        for future in futures:
            future.result()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    return {"bounded": bounded, "tasks": tasks, "workers": workers, "payload_mib": payload_mib,
            "start_method": config.start_method(), "limit": bound if bounded else None,
            "seconds": seconds, "producer_done_after": submitted_after,
            "baseline_rss_mib": baseline, "samples": samples,
            "peak_unfinished": max(s["unfinished"] for s in samples),
            "peak_extra_mib": max(s["rss_mib"] for s in samples) - baseline}


# --- observability: per-task metrics from WorkerPool.trace() ---


def observed_job(workers: int | None = None) -> list[TaskRecord]:
    """A mixed job on a WorkerPool (mostly 5 ms tasks, a few of 100 ms): its trace."""
    workers = workers or machine.usable_cpus()
    units = workloads.calibrate("python", budget_seconds=0.1).units_for(0.005)
    sizes = [20 * units if i % 15 == 7 else units for i in range(60)]
    with WorkerPool(workers) as pool:
        for future in [pool.submit(workloads.sleep_io, 10) for _ in range(workers)]:
            future.result()
        pool.trace(clear=True)
        for future in [pool.submit(workloads.python_loop, n) for n in sizes]:
            future.result()
        return pool.trace()


def summarise(records: list[TaskRecord]) -> dict[str, Any]:
    """What an operator would put on a dashboard: waits, run times, work per worker."""
    if not records:
        raise ValueError("summarise needs at least one task record")
    waits = [r.queued_seconds for r in records]
    runs = [r.run_seconds for r in records]
    span = max(r.finished for r in records) - min(r.submitted for r in records)
    per_worker: dict[str, list[TaskRecord]] = {}
    for record in records:
        per_worker.setdefault(record.worker, []).append(record)
    return {
        "tasks": len(records),
        "wall_seconds": span,
        "queue_wait_ms": {q: 1000 * measure.percentile(waits, p)
                          for q, p in (("p50", 50), ("p95", 95), ("max", 100))},
        "run_ms": {q: 1000 * measure.percentile(runs, p)
                   for q, p in (("p50", 50), ("p95", 95), ("max", 100))},
        "workers": [{"worker": worker, "tasks": len(rs),
                     "busy_seconds": round(sum(r.run_seconds for r in rs), 3),
                     "utilisation": f"{sum(r.run_seconds for r in rs) / span:.0%}"}
                    for worker, rs in sorted(per_worker.items())],
    }


# --- the decision guide, checked against measured runs ---

#: What ``check_advice`` records but notebook 08b's table leaves out.
ADVICE_HIDDEN = ("spread", "median_seconds", "gil_enabled")


@dataclass(frozen=True)
class Case:
    """One job to advise on and then to run every way."""

    name: str
    task_seconds: float
    tasks: int
    payload_bytes: int = 0
    gil_releasing: bool = False


def default_cases() -> list[Case]:
    """Four jobs that each call for a different answer on most machines."""
    return [
        Case("tiny job (200 × 50 µs)", 50e-6, 200),
        Case("coarse pure Python (100 × 5 ms)", 0.005, 100),
        Case("big payloads (40 × 1 ms, 4 MiB each)", 0.001, 40, payload_bytes=4 * 2**20),
        Case("GIL-releasing hashlib (100 × 5 ms)", 0.005, 100, gil_releasing=True),
    ]


def _run_case(case: Case, choice: str, workers: int, chunksize: int, units: int,
              threads: ThreadPoolExecutor, start_method: str) -> float:
    """Seconds for the whole case one way. Every task gets its own payload object (pickle
    would send one shared object only once per chunk)."""
    if case.gil_releasing:
        fn, columns = workloads.sha256_blocks, ([units] * case.tasks,)
    else:
        payloads = [b"p" * case.payload_bytes for _ in range(case.tasks)]
        fn, columns = production.work_on_payload, (payloads, [units] * case.tasks)
    start = time.perf_counter()
    if choice == "serial":
        for arguments in zip(*columns, strict=True):
            fn(*arguments)
    elif choice == "threads":
        list(threads.map(fn, *columns))
    else:  # a one-off job starts its pool: the clock includes it, as the model does
        pool = executors.make_executor("process", workers, start_method)
        try:
            list(pool.map(fn, *columns, chunksize=chunksize))
            return time.perf_counter() - start
        finally:
            pool.shutdown(wait=True)
    return time.perf_counter() - start


def check_advice(cases: list[Case] | None = None, model: advisor.CostModel | None = None,
                 repeats: int | None = None) -> list[dict[str, Any]]:
    """Ask ``advise`` about each case, then time it serially, on threads and on processes.

    A one-off job has to start its process pool, so that run's clock includes the
    start (with the model's start method), as the model does; the thread pool is
    reused (threads start in microseconds). Each row says whether the advised way was
    within 15 % of the fastest measured one.
    """
    cases = cases or default_cases()
    model = model or advisor.default_model()
    repeats = repeats or (2 if config.quick_mode() else 3)
    workers = machine.usable_cpus()
    python_units = workloads.calibrate("python", budget_seconds=0.2)
    sha_units = workloads.calibrate("sha256", budget_seconds=0.2)
    rows = []
    with ThreadPoolExecutor(workers) as threads:
        for case in cases:
            advice = advisor.advise(case.task_seconds, payload_bytes=case.payload_bytes,
                                    cpus=workers, gil_releasing=case.gil_releasing,
                                    tasks=case.tasks, model=model)
            calibration = sha_units if case.gil_releasing else python_units
            units = calibration.units_for(case.task_seconds)
            chunksize = advisor.chunk_size(case.task_seconds, case.tasks, workers, model)
            times: dict[str, list[float]] = {c: [] for c in advisor.CHOICES}
            for _, choice in measure.interleaved(list(advisor.CHOICES), repeats):
                times[choice].append(_run_case(case, choice, workers, chunksize, units,
                                                threads, model.start_method))
            medians = {c: statistics.median(v) for c, v in times.items()}
            fastest = min(medians, key=medians.get)
            rows.append({
                "case": case.name, "advice": advice.choice,
                "predicted_speedup": round(advice.predicted_speedup, 2),
                "advice_speedup": round(medians["serial"]
                                                        / medians[advice.choice], 2),
                "measured_ms": " / ".join(
                    f"{1000 * medians[c]:.0f}" for c in advisor.CHOICES),
                "fastest": fastest,
                "advice_within_15pc": medians[advice.choice]
                <= 1.15 * medians[fastest],
                "spread": max(measure.spread(v).relative_spread for v in times.values()),
                "median_seconds": medians,
                "gil_enabled": machine.gil_enabled(),
            })
    return rows


def leak_per_task_mib(rows: list[dict[str, Any]]) -> float:
    """Median growth of a worker's memory from one of its tasks to its next (MiB)."""
    last: dict[int, float] = {}
    steps = []
    for row in rows:
        if row["pid"] in last:
            steps.append(row["rss_mib"] - last[row["pid"]])
        last[row["pid"]] = row["rss_mib"]
    if not steps:
        raise ValueError("no worker ran two tasks: nothing to measure")
    return statistics.median(steps)


# --- a learner's SIGTERM handler (exercise 08.1) ---


@dataclass
class DrainCheck:
    """What a learner's job script did when it got SIGTERM while tasks were running."""

    problem: str = ""
    exit_code: int | None = None
    tasks: int = 0  # submitted by the script
    finished: int = 0  # tasks whose mark file exists (they ran to the end)
    running_at_sigterm: int = 0  # marks missing then, tasks a worker had started
    workers_left: int = 0  # the script's worker processes still alive afterwards
    output: str = ""


def check_drain(script: str, tasks: int = 12, workers: int = 2, timeout: float = 20.0
                ) -> DrainCheck:
    """Run ``python script MARKS_DIR`` (it submits ``tasks`` tasks of 0.5 s to a pool of
    ``workers`` and prints "started"), SIGTERM it once tasks are running, and count what
    finished. Everything it started is killed at the end."""
    import psutil

    check = DrainCheck(tasks=tasks)
    if not hasattr(signal, "SIGKILL"):
        check.problem = "this exercise needs Unix signals (Linux or macOS)"
        return check
    if not Path(script).is_file():
        check.problem = f"there is no file {script}: run the `%%writefile` cell first"
        return check
    marks = Path(tempfile.mkdtemp(prefix="course-drain-"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(paths.REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    job = subprocess.Popen([sys.executable, script, str(marks), str(tasks), str(workers)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    family: list[psutil.Process] = []
    try:
        first = job.stdout.readline()
        if "started" not in first:
            job.wait(timeout)
            check.output = first + job.stdout.read()
            check.problem = "the script ended before it printed \"started\""
            return check
        time.sleep(0.3)  # both workers are inside their first task (0.5 s each)
        family = psutil.Process(job.pid).children(recursive=True)
        check.running_at_sigterm = workers
        job.send_signal(signal.SIGTERM)
        try:
            check.output = first + job.communicate(timeout=timeout)[0]
            check.exit_code = job.returncode
        except subprocess.TimeoutExpired:
            check.problem = f"the script had not exited {timeout:g} s after SIGTERM"
        time.sleep(0.2)
        check.workers_left = sum(1 for p in family if p.is_running()
                                 and p.status() != psutil.STATUS_ZOMBIE)
        check.finished = len(list(marks.iterdir()))
        return check
    finally:
        for process in [*family, psutil.Process(job.pid) if job.poll() is None else None]:
            if process is not None:
                with contextlib.suppress(psutil.Error):
                    process.kill()
        job.wait(10)
        shutil.rmtree(marks, ignore_errors=True)
