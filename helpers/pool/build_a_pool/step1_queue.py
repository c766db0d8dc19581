"""Step 1: a queue of tasks, N worker processes, a queue of results.

    parent ──put──► tasks queue ──get──► worker 1 … worker N
    parent ◄──get── results queue ◄──put── (task_id, result)

A ``None`` on the task queue tells a worker to stop. Results arrive in the order
tasks *finish*, so each carries its task id and the parent puts them back in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from helpers.core import config, watchdog


def worker(tasks, results) -> None:
    """Take (task_id, fn, arg) from ``tasks`` until None; put (task_id, fn(arg)) on ``results``."""
    watchdog.worker_setup()  # ignore Ctrl-C, and exit if the parent dies
    while (item := tasks.get()) is not None:
        task_id, fn, arg = item
        results.put((task_id, fn(arg)))


def run_all(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 2,
            start_method: str | None = None) -> list[Any]:
    """Run ``fn`` on every item in ``workers`` processes; return the results in order."""
    context = config.mp_context(start_method)
    tasks, results = context.Queue(), context.Queue()
    processes = [context.Process(target=worker, args=(tasks, results), daemon=True)
                 for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        items = list(items)
        for task_id, item in enumerate(items):
            tasks.put((task_id, fn, item))
        for _ in processes:
            tasks.put(None)  # one "stop" per worker
        finished = dict(results.get() for _ in items)
    finally:  # interrupted or not, no worker may outlive this call
        for process in processes:
            process.join(timeout=1)
            if process.is_alive():
                process.terminate()
                process.join()
    return [finished[task_id] for task_id in range(len(items))]
