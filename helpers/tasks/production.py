"""Tasks that notebook 08's worker processes run (standard library only).

Each one stands for something production code does by accident or on purpose:
leaking memory, carrying a big payload, being a job with a visible side effect.
They live in a module (not a notebook cell) so every start method can import them.
"""

from __future__ import annotations

import os
import sys
import time

from helpers.core import workloads

#: What a leaking task keeps alive in its worker (module state survives between tasks).
_leaked: list[bytes] = []


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux /proc; elsewhere peak RSS)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, AttributeError):
        import resource  # Unix; Windows has neither, and the notebook says so

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def leaky_task(leak_mib: float, units: int = 0) -> tuple[int, float]:
    """Do ``units`` of pure-Python work and leak ``leak_mib`` MiB (a cache nobody empties).

    Returns ``(pid, rss_mib)`` measured after the task, so the parent can draw each
    worker's memory over time without sampling it from outside.
    """
    if units:
        workloads.python_loop(units)
    _leaked.append(b"x" * int(leak_mib * 2**20))  # every byte written: really resident
    return os.getpid(), rss_mib()


def work_on_payload(payload: bytes, units: int) -> int:
    """Pure-Python work on a task that carries ``payload`` (only its size is used)."""
    workloads.python_loop(units)
    return len(payload)


def run_job(job_id: int, seconds: float, log_path: str) -> int:
    """One job of the notebook's job runner: spin for ``seconds``, then append a line.

    The line (``job_id pid``) is written by the worker that did the work, with
    O_APPEND so concurrent workers never interleave: counting the lines afterwards
    tells how many times each job really ran.
    """
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
    line = f"{job_id} {os.getpid()}\n".encode()
    descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
    return job_id


def squared_distance(x: float, y: float, cx: float, cy: float) -> float:
    """Squared distance between (x, y) and (cx, cy)."""
    return (x - cx) ** 2 + (y - cy) ** 2


def nearest_centres(points: list[tuple[float, float]],
                    centres: list[tuple[float, float]]) -> list[int]:
    """For each point, the index of its nearest centre: k-means' assignment step, written
    the way a first version usually is (two nested loops, a call per pair)."""
    labels = []
    for x, y in points:
        best, best_distance = 0, float("inf")
        for index, (cx, cy) in enumerate(centres):
            distance = squared_distance(x, y, cx, cy)
            if distance < best_distance:
                best, best_distance = index, distance
        labels.append(best)
    return labels
