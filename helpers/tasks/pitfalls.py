"""Task functions for notebook 03's pitfalls: module functions, so every start method can
import them. Standard library only (NumPy is imported inside the one task that shows
NumPy's random numbers).
"""

from __future__ import annotations

import logging
import os
import random
import time


def numpy_random_draw(_: object = None) -> tuple[int, int]:
    """(pid, a number from NumPy's *global* random generator), after a short wait so that
    every worker of the pool gets a task."""
    import numpy as np

    time.sleep(0.05)
    return os.getpid(), int(np.random.randint(0, 1_000_000))


def stdlib_random_draw(_: object = None) -> tuple[int, int]:
    """(pid, a number from the ``random`` module, which reseeds itself after a fork)."""
    time.sleep(0.05)
    return os.getpid(), random.randrange(1_000_000)


def seeded_draw(seed: object) -> tuple[int, int]:
    """(pid, a number from a generator seeded by the task: the fix, reproducible too).

    ``seed`` is a ``numpy.random.SeedSequence`` (one child per task, made in the parent).
    """
    import numpy as np

    return os.getpid(), int(np.random.default_rng(seed).integers(0, 1_000_000))


def log_and_square(x: int) -> int:
    """Log a line from the worker, then return x²."""
    logging.getLogger("course.worker").warning("worker %d squaring %d", os.getpid(), x)
    return x * x


def setup_queue_logging(queue: object) -> None:
    """Pool initializer: send this worker's log records to ``queue`` (a QueueHandler)."""
    from logging.handlers import QueueHandler

    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(queue)]  # type: ignore[arg-type]
    root.setLevel(logging.INFO)


def parse_record(line: str) -> dict[str, str]:
    """Parse one ``key=value;key=value`` line; a bad line raises deep inside a helper."""
    return dict(_split(part) for part in line.split(";"))


def _split(part: str) -> tuple[str, str]:
    key, value = part.split("=")  # ValueError when there is no "="
    return key.strip(), value.strip()


def echo_size(payload: bytes) -> int:
    """Receive a payload (pickled to the worker) and return its size."""
    return len(payload)
