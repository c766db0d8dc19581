"""Task functions that work on NumPy arrays (notebooks 04 and 07). NumPy is imported
inside each function, so importing this module costs nothing; the functions themselves
need NumPy in the worker."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def where_am_i(_: object = None) -> tuple[int, str]:
    """(pid, thread name) of whoever runs this task: a process or a thread?"""
    time.sleep(0.05)  # long enough for every worker to get a task
    return os.getpid(), threading.current_thread().name


def private_mib() -> float | None:
    """Memory only this process uses (private pages, like psutil's USS), in MiB; Linux only."""
    try:
        text = open("/proc/self/smaps_rollup").read()
    except OSError:
        return None
    kib = sum(int(line.split()[1]) for line in text.splitlines()
              if line.startswith(("Private_Clean:", "Private_Dirty:")))
    return kib / 1024


def slice_sum_and_memory(array: Any, start: int, stop: int) -> tuple[float, float | None]:
    """(sum of one slice, this worker's private memory while it holds the array)."""
    return float(array[start:stop].sum()), private_mib()


def expensive_features(rows: int, seed: int = 0) -> Any:
    """A slow step worth caching: random data, then pairwise distances of its rows."""
    import numpy as np

    data = np.random.default_rng(seed).random((rows, 64))
    squared = (data**2).sum(axis=1)
    distances = squared[:, None] + squared[None, :] - 2 * data @ data.T
    time.sleep(0.2)  # stands in for reading the input from disk
    return np.sqrt(np.maximum(distances, 0)).mean(axis=1)
