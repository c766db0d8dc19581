"""Notebook 04's experiments: joblib's backends, batching, streaming, memmapping, caching,
and oversubscription.

::

    where_tasks_run      backend / prefer / require ──> which pid and thread ran the tasks
    cpu_counts           os.cpu_count | joblib.cpu_count (n_jobs=-1) | the machine card
    backends             serial | loky | threading | multiprocessing | worker-pool, on
                         pure-Python and GIL-releasing work ──> speedup (median, range)
    batching             tiny tasks: batch_size="auto" vs 1; and a job where "auto" guesses wrong
    streaming            return_as="generator": results while the others still run
    memmapping           a big array to every task: memory-mapped (default) vs pickled
    caching              joblib.Memory: the first call computes, the second reads the cache
    oversubscription     workers × BLAS threads per worker ──> seconds (a heatmap)

Every experiment stops joblib's reusable loky workers when it ends.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from helpers.core import config, machine, measure, workloads
from helpers.pool.joblib_backend import BACKEND_NAME, joblib_session, register
from helpers.tasks.arrays import expensive_features, slice_sum_and_memory, where_am_i

BACKENDS = ("loky", "threading", "multiprocessing", BACKEND_NAME)


def _parallel(**options: Any) -> Any:
    """A ``joblib.Parallel`` with the course's backend registered; use it in a ``with``
    block, which keeps its workers for every call inside."""
    from joblib import Parallel

    register()
    return Parallel(**options)


def where_tasks_run(n_jobs: int = 2) -> list[dict[str, Any]]:
    """For each way of asking, the processes and threads that actually ran 4 × n_jobs tasks."""
    from joblib import delayed

    asks = [("backend='loky' (the default)", {"backend": "loky"}),
            ("backend='threading'", {"backend": "threading"}),
            ("prefer='threads'", {"prefer": "threads"}),
            ("require='sharedmem'", {"require": "sharedmem"}),
            (f"backend='{BACKEND_NAME}'", {"backend": BACKEND_NAME})]
    rows = []
    with joblib_session():
        for label, options in asks:
            with _parallel(n_jobs=n_jobs, **options) as parallel:
                ran = parallel(delayed(where_am_i)(i) for i in range(4 * n_jobs))
            pids = {pid for pid, _ in ran}
            rows.append({"asked": label, "processes": len(pids),
                         "in_this_process": os.getpid() in pids,
                         "threads": sorted({name for _, name in ran})})
    return rows


def cpu_counts() -> dict[str, int]:
    """The CPU counts a learner meets: the machine's, joblib's (n_jobs=-1), the course's."""
    import joblib

    return {"os.cpu_count()": os.cpu_count() or 1,
            "joblib.cpu_count() (what n_jobs=-1 uses)": joblib.cpu_count(),
            "machine card: usable CPUs": machine.usable_cpus()}


def backends(workloads_: tuple[str, ...] = ("python", "sha256"), n_jobs: int | None = None,
             task_ms: float = 20, tasks: int | None = None, repeats: int | None = None
             ) -> list[dict[str, Any]]:
    """Speedup over a serial loop of each backend, per workload (median and range)."""
    from joblib import delayed

    n_jobs = n_jobs or machine.usable_cpus()
    tasks = tasks or 4 * n_jobs * int(config.budget(2, 1))
    repeats = repeats or int(config.budget(3, 2))
    rows = []
    with joblib_session():
        for name in workloads_:
            calibration = workloads.calibrate(name, budget_seconds=0.2)
            fn, units = workloads.get(name).function, calibration.units_for(task_ms / 1000)
            times: dict[str, list[float]] = {c: [] for c in ("serial", *BACKENDS)}
            with contextlib.ExitStack() as stack:
                runners = {backend: stack.enter_context(_parallel(n_jobs=n_jobs, backend=backend))
                           for backend in BACKENDS}
                for runner in runners.values():  # start every backend's workers (not timed)
                    runner(delayed(workloads.sleep_io)(20) for _ in range(2 * n_jobs))
                _time_interleaved(times, runners, fn, units, tasks, repeats)
            serial = statistics.median(times["serial"])
            for backend in BACKENDS:
                s = measure.spread(serial / t for t in times[backend])
                rows.append({"workload": name, "backend": backend, "n_jobs": n_jobs,
                             "speedup": s.median, "low": s.low, "high": s.high,
                             "gil_enabled": machine.gil_enabled()})
    return rows


def one_configuration(workload: str = "python", backend: str = "loky", n_jobs: int = 2,
                      batch_size: int | str = "auto", task_ms: float = 5.0, tasks: int = 200,
                      repeats: int = 2) -> dict[str, Any]:
    """One ``Parallel(n_jobs, backend, batch_size)`` job against a serial loop, repeated
    and interleaved: a row like :func:`backends`' (notebook 04's dashboard)."""
    from joblib import delayed

    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of: {', '.join(BACKENDS)}")
    if batch_size != "auto" and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be \"auto\" or a whole number from 1, "
                         f"got {batch_size!r}")
    if not 0.01 <= task_ms <= 1000 or not 1 <= tasks <= 100_000 \
            or tasks * task_ms > 20_000:
        raise ValueError("task_ms must be 0.01 to 1000, tasks 1 to 100000, and the job "
                         "(tasks × task_ms) at most 20 s of serial work")
    calibration = workloads.calibrate(workload, budget_seconds=0.2)
    fn, units = workloads.get(workload).function, calibration.units_for(task_ms / 1000)
    times: dict[str, list[float]] = {"serial": [], backend: []}
    with joblib_session(), _parallel(n_jobs=n_jobs, backend=backend,
                                     batch_size=batch_size) as runner:
        runner(delayed(workloads.sleep_io)(20) for _ in range(2 * n_jobs))  # start, not timed
        _time_interleaved(times, {backend: runner}, fn, units, tasks, repeats)
    s = measure.spread(a / b for a, b in zip(times["serial"], times[backend], strict=True))
    return {"workload": workload, "backend": backend, "n_jobs": n_jobs,
            "batch_size": batch_size, "tasks": tasks, "task_ms": task_ms,
            "speedup": s.median, "low": s.low, "high": s.high,
            "gil_enabled": machine.gil_enabled()}


def _time_interleaved(times: dict[str, list[float]], runners: dict[str, Any], fn: Any,
                      units: int, tasks: int, repeats: int) -> None:
    """Time ``tasks`` calls of ``fn(units)`` serially and on each runner, repeats
    interleaved, appending every run's seconds to ``times`` (keyed "serial" and by runner)."""
    from joblib import delayed

    for _, chosen in measure.interleaved(list(times), repeats):
        start = time.perf_counter()
        if chosen == "serial":
            for _ in range(tasks):
                fn(units)
        else:
            runners[chosen](delayed(fn)(units) for _ in range(tasks))
        times[chosen].append(time.perf_counter() - start)


def explain_backends(rows: list[dict[str, Any]]) -> str:
    """Each backend's speedup per workload, then what threads did, by the recorded GIL state."""
    lines = [f"- {r['workload']}, **{r['backend']}**: {r['speedup']:.2f}× "
             f"(range {r['low']:.2f}–{r['high']:.2f})" for r in rows]
    gil_on = all(r.get("gil_enabled", True) for r in rows)
    threads = {r["workload"]: r["speedup"] for r in rows if r["backend"] == "threading"}
    if "python" in threads:
        if gil_on:
            lines.append("\nThis run had the GIL on: `threading` runs pure-Python tasks one "
                         "at a time (they take turns holding it), while every process "
                         "backend can run them side by side. Threads only help work that "
                         "releases the GIL, such as `sha256`.")
        else:
            lines.append("\nThis run had the GIL **off**: `threading` runs pure-Python "
                         f"tasks in parallel too (here {threads['python']:.2f}×), without "
                         "pickling anything, so on this kernel it competes with the "
                         "process backends on both kinds of work.")
    return "\n".join(lines)


def batching(n_jobs: int = 2, tiny_tasks: int | None = None, repeats: int | None = None
             ) -> list[dict[str, Any]]:
    """Tiny tasks with batch_size='auto' vs 1; then a job of many tiny tasks followed by a
    few heavy ones, where the batch size learned on the tiny tasks is far too big."""
    from joblib import delayed

    tiny_tasks = tiny_tasks or int(config.budget(10_000, 4_000))
    repeats = repeats or int(config.budget(3, 2))
    heavy_units = workloads.calibrate("python", budget_seconds=0.2).units_for(0.02)
    uneven = [0] * (tiny_tasks // 2) + [heavy_units] * (4 * n_jobs)
    shuffled = list(uneven)
    random.Random(0).shuffle(shuffled)
    jobs = {"tiny tasks": [0] * tiny_tasks, "tiny, then heavy": uneven,
            "tiny and heavy, shuffled": shuffled}
    rows = []
    with joblib_session():
        for job, sizes in jobs.items():
            serial = measure.timed(lambda sizes=sizes: [workloads.python_loop(n) for n in sizes])[0]
            for batch_size in ("auto", 1):
                with _parallel(n_jobs=n_jobs, backend="loky", batch_size=batch_size) as runner:
                    runner(delayed(workloads.noop)(i) for i in range(2 * n_jobs))
                    seconds = [measure.timed(lambda r=runner, s=sizes: r(
                        delayed(workloads.python_loop)(n) for n in s))[0]
                        for _ in range(repeats)]
                s = measure.spread(seconds)
                rows.append({"job": job, "tasks": len(sizes), "batch_size": str(batch_size),
                             "seconds": s.median, "low": s.low, "high": s.high,
                             "serial_seconds": serial, "speedup": serial / s.median})
    return rows


def streaming(n_jobs: int = 2, tasks: int = 16, task_ms: float = 30) -> Iterator[Any]:
    """Results one by one as workers finish them (``return_as="generator_unordered"``)."""
    from joblib import delayed

    units = workloads.calibrate("python", budget_seconds=0.2).units_for(task_ms / 1000)
    with joblib_session():
        with _parallel(n_jobs=n_jobs, return_as="generator_unordered") as runner:
            yield from runner(delayed(workloads.python_loop)(units) for _ in range(tasks))


def memmapping(megabytes: int | None = None, n_jobs: int = 2, tasks: int = 8
               ) -> list[dict[str, Any]]:
    """A big array handed to every task: joblib's memory map (default) against pickling it."""
    import numpy as np
    from joblib import delayed

    megabytes = megabytes or int(config.budget(200, 64))
    array = np.ones(megabytes * 2**20 // 8)
    step = len(array) // tasks
    rows = []
    with joblib_session():
        with _parallel(n_jobs=n_jobs, backend="loky") as parallel:
            baseline = parallel(delayed(slice_sum_and_memory)(np.ones(8), 0, 8)
                                for _ in range(2 * n_jobs))
        idle = [m for _, m in baseline if m is not None]
        for label, max_nbytes in (("memory-mapped (max_nbytes='1M', the default)", "1M"),
                                  ("pickled to each task (max_nbytes=None)", None)):
            with _parallel(n_jobs=n_jobs, backend="loky", max_nbytes=max_nbytes) as runner:
                runner(delayed(workloads.noop)(i) for i in range(2 * n_jobs))
                start = time.perf_counter()
                results = runner(delayed(slice_sum_and_memory)(array, i * step, (i + 1) * step)
                                 for i in range(tasks))
                seconds = time.perf_counter() - start
            memory = [m for _, m in results if m is not None]
            rows.append({"how": label, "array_mib": megabytes, "seconds": seconds,
                         "worker_private_mib": max(memory) if memory else None,
                         "idle_worker_private_mib": max(idle) if idle else None,
                         "correct": sum(s for s, _ in results) == float(len(array) // tasks
                                                                        * tasks)})
    return rows


def caching(rows: int | None = None) -> dict[str, float]:
    """joblib.Memory: seconds for the first call (computed) and the second (from disk)."""
    from joblib import Memory

    rows = rows or int(config.budget(3000, 1500))
    location = tempfile.mkdtemp(prefix="course-joblib-cache-")
    try:
        memory = Memory(location, verbose=0)
        cached = memory.cache(expensive_features)
        first, result = measure.timed(lambda: cached(rows))
        second, again = measure.timed(lambda: cached(rows))
        other, _ = measure.timed(lambda: cached(rows, seed=1))
        return {"first_call_s": first, "second_call_s": second,
                "new_argument_s": other,
                "same_result": bool((result == again).all())}
    finally:
        shutil.rmtree(location, ignore_errors=True)


def oversubscription(workers: list[int] | None = None, threads: list[int] | None = None,
                     tasks: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    """Seconds for one NumPy job with every (joblib workers, BLAS threads per worker) pair:
    the median of ``repeats`` runs, and the range."""
    from joblib import delayed, parallel_config

    usable = machine.usable_cpus()
    workers = workers or sorted({1, usable, 2 * usable})
    threads = threads or sorted({1, usable, 2 * usable})
    tasks = tasks or 4 * max(workers)
    repeats = repeats or int(config.budget(3, 2))
    seconds: dict[tuple[int, int], float] = {}
    ranges: dict[tuple[int, int], tuple[float, float]] = {}
    ran_with: dict[tuple[int, int], int] = {}  # BLAS threads the tasks really had
    with joblib_session():
        for w in workers:
            for t in threads:
                with _blas_threads_for(w, t), \
                        parallel_config(backend="loky", inner_max_num_threads=t), \
                        _parallel(n_jobs=w) as runner:
                    runner(delayed(workloads.blas_matmul)(1) for _ in range(w))  # start, warm
                    ran_with[(w, t)] = max(runner(delayed(workloads.blas_threads)(i)
                                                  for i in range(w)))
                    runs = measure.spread(measure.timed(lambda r=runner: r(
                        delayed(workloads.blas_matmul)(6) for _ in range(tasks)))[0]
                        for _ in range(repeats))
                    seconds[(w, t)], ranges[(w, t)] = runs.median, (runs.low, runs.high)
    return {"workers": workers, "threads": threads, "tasks": tasks, "usable": usable,
            "repeats": repeats, "seconds": seconds, "ranges": ranges, "ran_with": ran_with}


def _blas_threads_for(workers: int, threads: int) -> contextlib.AbstractContextManager:
    """With one worker joblib runs the tasks here, in the kernel, and ignores
    ``inner_max_num_threads``: limit the kernel's own BLAS threads for that row instead."""
    if workers != 1:
        return contextlib.nullcontext()
    import numpy  # noqa: F401  (loads BLAS, so that threadpoolctl can see it)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def explain_oversubscription(heat: dict[str, Any]) -> str:
    """What the heatmap shows, in Markdown, with its own numbers."""
    seconds, usable = heat["seconds"], heat["usable"]
    best = min(seconds, key=seconds.get)
    near = sorted(cell for cell, s in seconds.items() if s <= 1.1 * seconds[best])
    worst = max(seconds, key=seconds.get)
    crowded = [s for (w, t), s in seconds.items() if w > 1 and w * t > usable]
    lines = [f"- Fastest: **{best[0]} worker(s) × {best[1]} BLAS thread(s)**, "
             f"{seconds[best]:.2f} s; within 10 % of it: "
             + ", ".join(f"{w}×{t}" for w, t in near) + ".",
             f"- Slowest: {worst[0]} workers × {worst[1]} threads = {worst[0] * worst[1]} busy "
             f"threads on {usable} CPUs, {seconds[worst]:.2f} s "
             f"({seconds[worst] / seconds[best]:.1f}× the fastest)."]
    if crowded:
        lines.append(f"- Every cell with several workers *and* more threads in all than CPUs "
                     f"took {min(crowded) / seconds[best]:.1f}–{max(crowded) / seconds[best]:.1f}× "
                     "the fastest: the threads take turns, and BLAS threads that spin while "
                     "they wait for each other waste the turns they get.")
    single = {t: seconds[(1, t)] for t in heat["threads"] if (1, t) in seconds}
    if len(single) > 1:
        times = ", ".join(f"{t} thread(s) {s:.2f} s" for t, s in single.items())
        fewest = single[min(single)]
        most = single[max(single)]
        lines.append(f"- One worker (joblib runs a one-worker job in the kernel itself, so "
                     f"the kernel's BLAS threads were limited for this row): {times}. "
                     + ("More threads than CPUs inside one process cost little here: one "
                        "BLAS library schedules all of them, while threads of different "
                        "processes know nothing about each other."
                        if most <= 1.3 * fewest or max(single) <= usable else
                        f"Even inside one process, {max(single)} BLAS threads on {usable} "
                        f"CPUs took {most / fewest:.1f}× the one-thread time."))
    capped = {cell: n for cell, n in heat.get("ran_with", {}).items() if n != cell[1]}
    if capped:
        lines.append("- Some cells did not get the BLAS threads they asked for (the library "
                     "capped them): " + ", ".join(f"{w}×{t} ran with {n}"
                                                  for (w, t), n in sorted(capped.items()))
                     + ".")
    return "\n".join(lines)


# --- a learner's streaming call (exercise 04.2) ---


def check_stream(stream: Any, items: tuple[int, ...] = (600, 20, 20, 20, 20, 20),
                 n_jobs: int = 2) -> tuple[list[Any], float]:
    """Consume ``stream(items, n_jobs)`` (a learner's generator of ``sleep_io`` results);
    return the results and the seconds between the first and the last one arriving. A
    call that streams unordered gets the 20 ms results long before the 600 ms one; one
    that waits for everything, or keeps the order, gets them all at once."""
    arrivals, results = [], []
    with joblib_session():
        for value in stream(list(items), n_jobs):
            arrivals.append(time.perf_counter())
            results.append(value)
    return results, (arrivals[-1] - arrivals[0]) if arrivals else 0.0
