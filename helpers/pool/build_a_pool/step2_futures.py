"""Step 2: ``submit`` returns a Future, and a thread in the parent resolves it.

    submit(fn, arg) ──► Future (pending), task on the queue
    collector thread: results queue ──► futures[task_id].set_result(result)

A ``concurrent.futures.Future`` is what lets callers wait for one result, for all
of them (``wait``), for the first ones done (``as_completed``) or from asyncio
(``asyncio.wrap_future``): the pool only has to resolve it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from helpers.core import config
from helpers.pool.build_a_pool.step1_queue import worker


class FuturesPool:
    """Step 1's workers, with a Future per task."""

    #: What each worker process runs (step 3 swaps in a safer one).
    worker_function = staticmethod(worker)

    def __init__(self, workers: int = 2, start_method: str | None = None) -> None:
        context = config.mp_context(start_method)
        self._tasks, self._results = context.Queue(), context.Queue()
        self._futures: dict[int, Future] = {}
        self._ids = itertools.count()
        self._processes = [context.Process(target=self.worker_function,
                                           args=(self._tasks, self._results), daemon=True)
                           for _ in range(workers)]
        for process in self._processes:
            process.start()
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Future:
        task_id = next(self._ids)
        future: Future = Future()
        self._futures[task_id] = future
        self._tasks.put((task_id, fn, arg))
        return future

    def _collect(self) -> None:
        while (item := self._results.get()) is not None:
            self._resolve(*item)

    def _resolve(self, task_id: int, result: Any) -> None:
        self._futures.pop(task_id).set_result(result)

    def shutdown(self) -> None:
        for _ in self._processes:
            self._tasks.put(None)
        for process in self._processes:
            process.join()
        self._results.put(None)  # stops the collector
        self._collector.join()
