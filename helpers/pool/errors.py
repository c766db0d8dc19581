"""The errors a WorkerPool task can end with, beyond the task's own exception.

Each is a subclass of the standard library's error for the same situation, so code
written for ``ProcessPoolExecutor`` catches them unchanged::

    RuntimeError ─ BrokenExecutor ─ BrokenProcessPool ─┬─ WorkerCrashed
                                                       ├─ WorkerInitError
                                                       └─ PoolTerminated
    TimeoutError ─ TaskTimeout

Standard library only.
"""

from __future__ import annotations

import signal
from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback


class WorkerCrashed(BrokenProcessPool):
    """A worker process died while it ran this task, or (``result_lost``) after it ran it,
    before the result was sent back, when the task had already been run again once (its
    result lost before, or unreadable in the parent). The pool replaced the worker and
    goes on."""

    def __init__(self, pid: int, exitcode: int | None, tasks: int = 1,
                 result_lost: bool = False) -> None:
        self.pid, self.exitcode, self.tasks = pid, exitcode, tasks
        self.result_lost = result_lost
        if result_lost:
            what = ("after this task had run, before its result was sent back; the task had "
                    "already been run again once, so it does not run a third time")
        else:
            what = "while it ran this task"
        super().__init__(f"worker pid {pid} {describe_exit(exitcode)} {what}; "
                         "the pool started a replacement")

    def __reduce__(self):
        return type(self), (self.pid, self.exitcode, self.tasks, self.result_lost)


class WorkerInitError(BrokenProcessPool):
    """The pool's initializer raised in a worker; the pool cannot run tasks."""


class PoolTerminated(BrokenProcessPool):
    """The pool was stopped at once: ``terminate()``, ``kill_workers()``, or Ctrl-C in a
    ``with`` block. Running tasks fail with this; queued ones are cancelled."""


class TaskTimeout(TimeoutError):
    """The task ran past ``task_timeout``; its worker was killed and replaced."""


#: The traceback of an exception raised in a worker, set as its ``__cause__``: the very
#: class ``ProcessPoolExecutor`` uses (text in ``.tb``), so code that inspects one works
#: with the other.
RemoteTraceback = _RemoteTraceback


def describe_exit(exitcode: int | None) -> str:
    """'was killed by signal SIGKILL', 'exited with code 3', ..."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"was killed by signal {name}"
    return f"exited with code {exitcode}"


def with_remote_traceback(error: BaseException, text: str | None) -> BaseException:
    """Attach a worker's traceback text to ``error`` as its cause."""
    if text:
        error.__cause__ = RemoteTraceback(text)
    return error
