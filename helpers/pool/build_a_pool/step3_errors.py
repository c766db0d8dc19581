"""Step 3: a task that raises fails its own Future, with the worker's traceback.

The worker catches the exception and sends it back with its traceback as text
(a traceback object cannot be pickled). The parent raises the original exception
type and chains the remote traceback as its ``__cause__``, as
``concurrent.futures.ProcessPoolExecutor`` does.
"""

from __future__ import annotations

import traceback
from typing import Any

from helpers.core import watchdog
from helpers.pool.build_a_pool.step2_futures import FuturesPool


class RemoteTraceback(Exception):
    """The worker's traceback, shown under the re-raised exception."""


def safe_worker(tasks, results) -> None:
    """Like step 1's worker, but an exception becomes a result instead of killing the worker."""
    watchdog.worker_setup()
    while (item := tasks.get()) is not None:
        task_id, fn, arg = item
        try:
            results.put((task_id, True, fn(arg), None))
        except Exception as error:  # it goes back to the caller
            results.put((task_id, False, error, traceback.format_exc()))


class ErrorsPool(FuturesPool):
    """Step 2's pool, with ``safe_worker`` and exceptions set on the futures."""

    worker_function = staticmethod(safe_worker)

    def _resolve(self, task_id: int, ok: bool, value: Any, text: str | None) -> None:
        future = self._futures.pop(task_id)
        if ok:
            future.set_result(value)
        else:
            value.__cause__ = RemoteTraceback(text)
            future.set_exception(value)
