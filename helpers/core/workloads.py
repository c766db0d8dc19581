"""Calibrated tasks of a chosen duration.

A *workload* is a module-level function ``f(n)`` whose running time grows linearly
with ``n``. Calibration measures how long one unit takes on *this* machine, within a
time budget, so an experiment can ask for "tasks of 20 ms" and get about that on a
slow laptop and on a 64-core server alike.

=================  =============================================  ==============
name               what one task does                             holds the GIL?
=================  =============================================  ==============
``python``         a pure-Python arithmetic loop                  yes
``sha256``         hashlib.sha256 over 64 KiB blocks              no (C releases it)
``zlib``           zlib.compress of a 64 KiB buffer               no
``pillow``         Pillow Gaussian blur of an image from data/    no (needs Pillow)
``numpy``          NumPy 128×128 matrix products                  no (needs NumPy)
``sleep``          time.sleep, 1 ms per unit                      no (I/O-bound)
``socket``         waiting on a socket, 1 ms per unit             no (I/O-bound)
=================  =============================================  ==============

The standard-library workloads import nothing else, so any interpreter (a
free-threaded build, a newer Python with nothing installed) can run them. Pillow
and NumPy are imported inside their own functions, only when those run.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from helpers.core import paths

SAMPLE_IMAGE = paths.DATA_DIR / "images" / "sample.png"

_BLOCK_BYTES = 64 * 1024


# --- the task functions (run in workers: standard library only at module level) ---


def python_loop(n: int) -> int:
    """Pure-Python arithmetic: n thousand loop iterations. Holds the GIL throughout."""
    total = 0
    for i in range(n * 1000):
        total += i * i % 7
    return total


@cache
def _block() -> bytes:
    """64 KiB of deterministic, moderately compressible bytes."""
    pattern = bytes(range(256)) * 4
    return b"".join(
        hashlib.sha256(pattern + i.to_bytes(4, "little")).digest() * 8
        for i in range(_BLOCK_BYTES // 256)
    )


def sha256_blocks(n: int) -> str:
    """SHA-256 over n blocks of 64 KiB. hashlib releases the GIL for large updates."""
    digest = hashlib.sha256()
    block = _block()
    for _ in range(n):
        digest.update(block)
    return digest.hexdigest()


def zlib_compress(n: int) -> int:
    """Compress a 64 KiB buffer n times. zlib releases the GIL while it works."""
    block = _block()
    size = 0
    for _ in range(n):
        size += len(zlib.compress(block, 6))
    return size


@cache
def _sample_image() -> Any:
    from PIL import Image  # imported here, so the module stays standard-library only

    if not SAMPLE_IMAGE.exists():
        raise FileNotFoundError(
            f"{SAMPLE_IMAGE} is missing; install the course from its repository "
            "(pip install -e .) so that data/ sits next to helpers/."
        )
    with Image.open(SAMPLE_IMAGE) as image:
        return image.convert("RGB").resize((256, 256))


def pillow_blur(n: int) -> int:
    """n Gaussian blurs of a 256×256 image. Pillow releases the GIL in its C core."""
    from PIL import ImageFilter

    image = _sample_image()
    for _ in range(n):
        image = image.filter(ImageFilter.GaussianBlur(2))
    return image.width * image.height


def _matrix_products(n: int, size: int) -> float:
    import numpy as np

    a = np.linspace(0.0, 1.0, size * size).reshape(size, size)
    b = a.T.copy()
    for _ in range(n):
        a = (a @ b) / size
    return float(a[0, 0])


def numpy_matmul(n: int) -> float:
    """n products of 128×128 matrices. NumPy (BLAS) releases the GIL."""
    return _matrix_products(n, 128)


def blas_matmul(n: int) -> float:
    """n products of 512×512 matrices: big enough that BLAS starts threads of its own."""
    return _matrix_products(n, 512)


def limit_blas_threads(threads: int) -> None:
    """A pool initializer: cap this worker's BLAS/OpenMP thread pools (threadpoolctl)."""
    import numpy  # noqa: F401  (loads BLAS, so that threadpoolctl can see it)
    from threadpoolctl import threadpool_limits

    global _blas_limit
    _blas_limit = threadpool_limits(limits=threads)  # kept alive: the limit lasts


_blas_limit: Any = None


def blas_threads(_: object = None) -> int:
    """The most threads any BLAS/OpenMP pool in this process would use now (threadpoolctl)."""
    import numpy  # noqa: F401  (loads BLAS, so that threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


def sleep_io(n: int) -> int:
    """Sleep n milliseconds: stands in for waiting on a disk or a database."""
    time.sleep(n / 1000)
    return n


def socket_wait(n: int) -> int:
    """Wait n milliseconds for data on a socket that gets none: network-style waiting."""
    left, right = socket.socketpair()
    try:
        select.select([left], [], [], n / 1000)
    finally:
        left.close()
        right.close()
    return n


def noop(n: int = 0) -> int:
    """Return at once: measures pure per-task overhead."""
    return n


# --- the registry ---


@dataclass(frozen=True)
class Workload:
    """A task function and what it teaches."""

    name: str
    function: Callable[[int], Any]
    unit: str
    releases_gil: bool
    io_bound: bool = False
    requires: str | None = None  # third-party module it needs, if any

    def available(self) -> bool:
        """True when what this workload needs is installed (and its data present)."""
        if self.requires is None:
            return True
        try:
            __import__(self.requires)
        except ImportError:
            return False
        return self.name != "pillow" or SAMPLE_IMAGE.exists()


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("python", python_loop, "1000 loop iterations", releases_gil=False),
        Workload("sha256", sha256_blocks, "64 KiB hashed", releases_gil=True),
        Workload("zlib", zlib_compress, "64 KiB compressed", releases_gil=True),
        Workload("pillow", pillow_blur, "one blur", releases_gil=True, requires="PIL"),
        Workload("numpy", numpy_matmul, "one matrix product", releases_gil=True,
                 requires="numpy"),
        Workload("sleep", sleep_io, "1 ms asleep", releases_gil=True, io_bound=True),
        Workload("socket", socket_wait, "1 ms waiting", releases_gil=True, io_bound=True),
    ]
}


def get(name: str) -> Workload:
    """The workload called ``name``, with a clear error listing the names allowed."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(
            f"unknown workload {name!r}; choose one of: {', '.join(WORKLOADS)}"
        ) from None


# --- calibration ---


@dataclass(frozen=True)
class Calibration:
    """How long one unit of a workload takes on this machine, in this process."""

    workload: str
    seconds_per_unit: float
    samples: int
    budget_seconds: float
    pid: int

    def units_for(self, seconds: float) -> int:
        """How many units make a task of about ``seconds``."""
        if seconds <= 0:
            raise ValueError(f"task duration must be positive, got {seconds!r} s")
        return max(1, round(seconds / self.seconds_per_unit))


def calibrate(name: str, budget_seconds: float = 0.5) -> Calibration:
    """Measure one unit of workload ``name`` within about ``budget_seconds``.

    Doubles the task size until one call takes a tenth of the budget, then times
    calls of that size until the budget is spent, and keeps the median.
    I/O workloads are 1 ms per unit by construction and are not measured.
    """
    workload = get(name)
    if budget_seconds <= 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds!r}")
    if workload.io_bound:
        return Calibration(name, 0.001, 0, budget_seconds, os.getpid())

    deadline = time.perf_counter() + budget_seconds
    n, elapsed = 1, timed_task(workload.function, 1)
    while elapsed < budget_seconds / 10 and time.perf_counter() < deadline:
        n *= 2
        elapsed = timed_task(workload.function, n)
    per_unit = [elapsed / n]
    while time.perf_counter() + elapsed < deadline:
        per_unit.append(timed_task(workload.function, n) / n)
    return Calibration(name, statistics.median(per_unit), len(per_unit), budget_seconds,
                       os.getpid())


def timed_task(fn: Callable[[int], Any], n: int) -> float:
    """Run ``fn(n)`` and return the seconds it took, measured where it runs.

    Submitted to a pool in place of ``fn``, it returns the task's own duration inside
    the worker (no queueing, no pickling): the benchmark's evidence of stragglers.
    """
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start
