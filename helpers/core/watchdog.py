"""Worker-side safety: nothing outlives the kernel, and Ctrl-C reaches the kernel only.

Run :func:`worker_setup` as a pool's ``initializer`` (or at the top of any child
process). It does two things:

1. ignores SIGINT, so Jupyter's *interrupt* reaches the kernel, which then cancels
   the work and shuts the pool down cleanly, instead of killing workers mid-task;
2. starts a daemon thread that waits on the parent's *sentinel* and calls
   ``os._exit`` when the parent is gone, even if it died by SIGKILL. Without it,
   a forked worker blocked on a queue can wait for ever once its kernel is killed.

Standard library only: this module runs inside worker processes.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading

#: Exit status a worker uses when it exits because its parent died.
ORPHANED_EXIT_CODE = 70


def ignore_sigint() -> None:
    """Let Ctrl-C (SIGINT) go to the parent only."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_when_parent_dies() -> threading.Thread | None:
    """Start a daemon thread that ends this process when its parent process ends.

    Returns the thread, or None when this process has no multiprocessing parent
    (it was not started by ``multiprocessing``).
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return None

    def wait_for_parent() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(ORPHANED_EXIT_CODE)

    thread = threading.Thread(target=wait_for_parent, name="exit-when-parent-dies", daemon=True)
    thread.start()
    return thread


def worker_setup() -> None:
    """Initializer for every course pool: ignore SIGINT, exit with the parent."""
    ignore_sigint()
    exit_when_parent_dies()
