"""Per-task records: which worker ran which task, and when.

Every executor experiment wraps its task in :func:`traced_call`, which runs in the
worker and returns the result together with a :class:`TaskRecord`. The records feed
the timeline (Gantt) plots and the measurements::

    parent: submit(traced_call, fn, task_id, arg) ──> worker: run fn(arg)
    parent: (result, TaskRecord)                 <── worker: stamp started/finished

Times come from ``time.perf_counter()``. In CPython it reads a system-wide monotonic
clock on Linux, macOS and Windows, so stamps taken in different processes of one
machine can be compared; plots subtract the experiment's own start time.

Standard library only: this module runs inside worker processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TaskRecord:
    """When one task was submitted, started and finished, and by which worker."""

    task_id: int
    worker: str  # "pid 1234" for processes, "pid 1234 / thread 5678" for threads
    submitted: float
    started: float
    finished: float

    @property
    def queued_seconds(self) -> float:
        return self.started - self.submitted

    @property
    def run_seconds(self) -> float:
        return self.finished - self.started

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worker_name(include_thread: bool = False) -> str:
    """A readable name for the current worker: its pid, and thread id if asked."""
    name = f"pid {os.getpid()}"
    if include_thread:
        name += f" / thread {threading.get_native_id()}"
    return name


def traced_call(
    fn: Callable[..., Any],
    task_id: int,
    submitted: float,
    *args: Any,
    include_thread: bool = False,
) -> tuple[Any, TaskRecord]:
    """Run ``fn(*args)`` and return ``(result, TaskRecord)``. Runs in the worker."""
    started = time.perf_counter()
    result = fn(*args)
    finished = time.perf_counter()
    record = TaskRecord(task_id, worker_name(include_thread), submitted, started, finished)
    return result, record


def trace_task(fn: Callable[..., Any], arg: Any, job_start: float, task_id: int) -> TaskRecord:
    """Run ``fn(arg)`` and return only its record (for ``map`` over task ids). Runs in the worker.

    ``submitted`` is the job's start: with ``map`` the caller hands over all tasks at once.
    """
    started = time.perf_counter()
    fn(arg)
    return TaskRecord(task_id, worker_name(), job_start, started, time.perf_counter())


def relative_to(records: Iterable[TaskRecord], start: float) -> list[TaskRecord]:
    """The same records with times measured from ``start`` (seconds)."""
    return [
        TaskRecord(
            r.task_id, r.worker, r.submitted - start, r.started - start, r.finished - start
        )
        for r in records
    ]
