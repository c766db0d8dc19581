"""The pool's Future: ``cancel()`` also stops a task that is already running.

A standard ``Future`` refuses to cancel once it is RUNNING, because a thread cannot be
stopped. A worker *process* can: ``cancel()`` on a running task asks the pool to kill
the worker that runs it and start a replacement (as pebble does); only that task is
cancelled. ``cancel()`` on a pending task works as usual, and the pool stops counting
it against ``max_pending`` at once. A task already sent to a worker behind another task
(the pool sends short tasks ahead) is RUNNING but not started: ``cancel()`` cancels its
future, but the worker still runs the function when it gets there (its result is
dropped). ProcessPoolExecutor refuses to cancel such a task (in its call queue) at all.

This reaches into ``concurrent.futures``' Future internals (``_condition``, ``_state``,
``_waiters``, ``_invoke_callbacks``), which have been stable since Python 3.2.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import Any


class TaskFuture(Future):
    """A Future whose ``cancel()`` reaches the pool."""

    def __init__(self, on_cancel: Callable[[TaskFuture, bool], bool]) -> None:
        super().__init__()
        self._on_cancel = on_cancel  # the pool's hook: (future, was_running) -> cancelled?
        self.task: Any = None  # the pool's record of this task (dropped once settled)

    def cancel(self) -> bool:
        """Cancel the task, running or not. False only if it has already finished. (A
        task sent to a worker behind another one still runs there: see the module.)

        A pending task leaves the pool's books *before* its done-callbacks run, so a
        callback that submits more work finds the room this cancel made.
        """
        with self._condition:
            state = self._state
            if state == PENDING:
                self._state = CANCELLED
                self._condition.notify_all()
        if state == PENDING:
            self._on_cancel(self, False)  # the pool stops counting it
            self._invoke_callbacks()
            return True
        if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            return True
        if state == FINISHED:
            return False
        return self._on_cancel(self, True)

    def mark_cancelled_while_running(self) -> bool:
        """The pool's side of cancelling a running task: finish it as cancelled."""
        with self._condition:
            if self._state == FINISHED:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        return True
