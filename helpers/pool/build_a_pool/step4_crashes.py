"""Step 4: one pipe per worker, so a crash fails only the task that worker held.

With one shared queue (steps 1–3) the parent cannot tell which task a dead worker
had taken: the standard library's ``ProcessPoolExecutor`` gives up and fails
*every* pending task (``BrokenProcessPool``). Here each worker has its own pipe and
gets one task at a time, so the parent always knows what each worker holds::

    parent ──pipe 1──► worker 1        wait() on every pipe *and* every
    parent ──pipe 2──► worker 2        process sentinel (readable when it dies)

When a sentinel fires, the parent fails that worker's task with an error naming
the exit code or signal, starts a replacement, and carries on.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any

from helpers.core import config, watchdog


def pipe_worker(conn) -> None:
    """Receive (fn, arg) on ``conn``, send back (ok, value); stop on None."""
    watchdog.worker_setup()
    while (item := conn.recv()) is not None:
        fn, arg = item
        try:
            conn.send((True, fn(arg)))
        except Exception as error:
            conn.send((False, error))


class CrashSafePool:
    """Runs tasks one per worker at a time; a dead worker is replaced, not fatal.

    ``run(fn, args)`` runs every task and returns their Futures, all resolved.
    (The real pool does this from background threads, with batching; the idea is
    the same.)
    """

    def __init__(self, workers: int = 2, start_method: str | None = None) -> None:
        self._context = config.mp_context(start_method)
        self._workers = [self._start() for _ in range(workers)]
        self.replaced = 0

    def _start(self) -> dict[str, Any]:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=pipe_worker, args=(child_end,), daemon=True)
        process.start()
        child_end.close()
        return {"process": process, "conn": parent_end, "task": None}

    def run(self, fn: Callable[[Any], Any], args: list[Any]) -> list[Future]:
        futures = [Future() for _ in args]
        todo = deque(zip(itertools.count(), args))
        while todo or any(w["task"] is not None for w in self._workers):
            for w in self._workers:  # hand a task to every idle worker
                if w["task"] is None and todo:
                    w["task"], arg = todo.popleft()
                    w["conn"].send((fn, arg))
            by_conn = {w["conn"]: w for w in self._workers if w["task"] is not None}
            by_sentinel = {w["process"].sentinel: w for w in by_conn.values()}
            for ready in wait([*by_conn, *by_sentinel]):
                if ready in by_conn and by_conn[ready]["task"] is not None:
                    w = by_conn[ready]
                    try:
                        ok, value = w["conn"].recv()
                    except EOFError:
                        continue  # it died: its sentinel says so too
                    if ok:
                        futures[w["task"]].set_result(value)
                    else:
                        futures[w["task"]].set_exception(value)
                    w["task"] = None
                elif ready in by_sentinel and by_sentinel[ready]["task"] is not None:
                    self._replace(by_sentinel[ready], futures)
        return futures

    def _replace(self, dead: dict[str, Any], futures: list[Future]) -> None:
        dead["process"].join()
        futures[dead["task"]].set_exception(BrokenProcessPool(
            f"worker pid {dead['process'].pid} died (exit code {dead['process'].exitcode}) "
            "while running this task"))
        self._workers[self._workers.index(dead)] = self._start()
        self.replaced += 1

    def shutdown(self) -> None:
        for w in self._workers:
            w["conn"].send(None)
        for w in self._workers:
            w["process"].join()
