"""One way to start the pools the experiments compare, and one way to warm them up.

====================  =====================================================
``"thread"``          ``ThreadPoolExecutor(max_workers=workers)``
``"process"``         ``ProcessPoolExecutor`` with the chosen start method,
                      its workers set up to die with the kernel
``"WorkerPool"``      the course's :class:`~helpers.pool.WorkerPool`
====================  =====================================================
"""

from __future__ import annotations

from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any

from helpers.core import config, watchdog, workloads
from helpers.pool import WorkerPool

KINDS = ("thread", "process", "WorkerPool")


def make_executor(kind: str, workers: int, start_method: str | None = None,
                  **options: Any) -> Executor:
    """A pool of ``workers`` of one kind; ``options`` go to WorkerPool (``task_timeout``...).

    ``start_method`` None means the course's default (``COURSE_START_METHOD``)."""
    if options and kind != "WorkerPool":
        raise TypeError(f"options {sorted(options)} are WorkerPool's; {kind!r} takes none")
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers)
    if kind == "process":
        return ProcessPoolExecutor(max_workers=workers,
                                   mp_context=config.mp_context(start_method),
                                   initializer=watchdog.worker_setup)
    if kind == "WorkerPool":
        return WorkerPool(workers, mp_context=config.mp_context(start_method), **options)
    raise ValueError(f"executor kind {kind!r} is not one of: {', '.join(KINDS)}")


def warm_up(executor: Executor, workers: int) -> None:
    """Make every worker start (short overlapping sleeps) before the clock starts."""
    wait([executor.submit(workloads.sleep_io, 20) for _ in range(2 * workers)])
