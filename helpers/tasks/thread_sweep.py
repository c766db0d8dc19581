"""A thread-scaling sweep that any Python can run with nothing installed.

    python -m helpers.tasks.thread_sweep --threads 1,2 --workloads python,sha256 --task-ms 10

prints one JSON object: the interpreter (version, free-threaded build, GIL on or
off) and, per workload and executor, the seconds each repeat took. The notebook runs
it in *other* interpreters (a free-threaded ``python3.14t``, an older CPython) with
``PYTHONPATH`` pointing at this course, so only the standard library is needed.
Executors: ``thread``, and ``interpreters`` (``concurrent.futures.InterpreterPoolExecutor``)
on Python 3.14 and newer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import sys
import sysconfig
import time

from helpers.core import workloads

STDLIB_WORKLOADS = ("python", "sha256", "zlib")


def interpreter_facts() -> dict[str, object]:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return {
        "executable": sys.executable,
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": True if is_enabled is None else bool(is_enabled()),
        "has_interpreter_pool": hasattr(concurrent.futures, "InterpreterPoolExecutor"),
    }


def _pool(executor: str, workers: int) -> concurrent.futures.Executor:
    if executor == "thread":
        return concurrent.futures.ThreadPoolExecutor(workers)
    if executor == "interpreters":
        return concurrent.futures.InterpreterPoolExecutor(workers)
    raise ValueError(f"executor {executor!r} is not one of: thread, interpreters")


def sweep(threads: list[int], names: list[str], task_seconds: float, tasks: int,
          repeats: int, executors: list[str]) -> dict[str, object]:
    """Time ``tasks`` tasks of each workload on each executor and thread count."""
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for executor in executors:
        if executor == "interpreters" and not hasattr(concurrent.futures,
                                                       "InterpreterPoolExecutor"):
            continue
        for name in names:
            calibration = workloads.calibrate(name, budget_seconds=0.2)
            units, function = calibration.units_for(task_seconds), workloads.get(name).function
            timings = results.setdefault(executor, {}).setdefault(name, {})
            for _ in range(repeats):
                for count in threads:
                    with _pool(executor, count) as pool:
                        list(pool.map(function, [1] * count))  # start the workers
                        start = time.perf_counter()
                        list(pool.map(function, [units] * tasks))
                        timings.setdefault(str(count), []).append(time.perf_counter() - start)
    return {"interpreter": interpreter_facts(), "task_seconds": task_seconds, "tasks": tasks,
            "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.tasks.thread_sweep")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--workloads", default=",".join(STDLIB_WORKLOADS))
    parser.add_argument("--executors", default="thread")
    parser.add_argument("--task-ms", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    names = [w for w in args.workloads.split(",") if w]
    for name in names:
        if name not in STDLIB_WORKLOADS:
            parser.error(f"workload {name!r} needs packages; use: {', '.join(STDLIB_WORKLOADS)}")
    document = sweep(threads, names, args.task_ms / 1000, args.tasks, args.repeats,
                     args.executors.split(","))
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
