"""Make it fast serially first: profile, vectorise, and only then parallelise (notebook 08b).

The job is k-means' assignment step: for each of ``n`` points, the nearest of ``k``
centres. Three ways, timed side by side and checked to give the same labels::

    pure Python, one process ──cProfile──> where the time goes (a call per pair)
    pure Python, N processes   (the parallel fix: at best N× faster)
    NumPy, one process         (the serial fix: one array expression, no Python loop)

Parent side only (NumPy); the pure-Python version lives in ``helpers.tasks.production`` so
worker processes can import it.
"""

from __future__ import annotations

import cProfile
import math
import pstats
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.core import config, machine, measure
from helpers.experiments import executors, learner_code
from helpers.tasks import production

CENTRES = 8


def make_points(n: int, k: int = CENTRES, seed: int = 8) -> tuple[list, list]:
    """``n`` random points and ``k`` random centres in the unit square, as lists of pairs."""
    rng = random.Random(seed)
    points = [(rng.random(), rng.random()) for _ in range(n)]
    centres = [(rng.random(), rng.random()) for _ in range(k)]
    return points, centres


def nearest_centres_numpy(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The same labels with no Python loop: an (n, k) table of squared distances, then argmin.

    ``points[:, 0:1] - centres[:, 0]`` broadcasts an (n, 1) column against k centres.
    """
    dx = points[:, 0:1] - centres[:, 0]
    dy = points[:, 1:2] - centres[:, 1]
    return (dx * dx + dy * dy).argmin(axis=1)


def points_for(seconds: float) -> int:
    """How many points the pure-Python version handles in about ``seconds`` here."""
    sample, centres = make_points(2000)
    start = time.perf_counter()
    production.nearest_centres(sample, centres)
    per_point = (time.perf_counter() - start) / len(sample)
    return max(2000, int(seconds / per_point))


def profile_python(n: int = 20_000, top: int = 4) -> list[dict[str, Any]]:
    """cProfile of the pure-Python version: the functions with the most time of their own."""
    points, centres = make_points(n)
    profiler = cProfile.Profile()
    profiler.runcall(production.nearest_centres, points, centres)
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    for (_, _, name), (_, calls, own, cumulative, _) in stats.stats.items():
        if "_lsprof" in name:  # the profiler itself
            continue
        rows.append({"function": name, "calls": calls, "own_seconds": round(own, 4),
                     "share": f"{own / total:.0%}",
                     "cumulative_seconds": round(cumulative, 4)})
    rows.sort(key=lambda r: r["own_seconds"], reverse=True)
    return rows[:top]


def compare(python_seconds: float | None = None, repeats: int | None = None,
            workers: int | None = None) -> list[dict[str, Any]]:
    """Time the three ways on the same points, interleaved; one row per way and repeat."""
    python_seconds = python_seconds or config.budget(0.4, 0.15)
    repeats = repeats or (2 if config.quick_mode() else 3)
    workers = workers or machine.usable_cpus()
    n = points_for(python_seconds)
    points, centres = make_points(n)
    array_points, array_centres = np.array(points), np.array(centres)
    chunk = math.ceil(n / (4 * workers))
    chunks = [points[i:i + chunk] for i in range(0, n, chunk)]
    expected = production.nearest_centres(points, centres)

    def python() -> list[int]:
        return production.nearest_centres(points, centres)

    def processes() -> list[int]:
        labels: list[int] = []
        for part in pool.map(production.nearest_centres, chunks,
                             [centres] * len(chunks)):
            labels.extend(part)
        return labels

    def vectorised() -> list[int]:
        return nearest_centres_numpy(array_points, array_centres).tolist()

    ways = {"pure Python, 1 process": python,
            f"pure Python, {workers} processes": processes,
            "NumPy, 1 process": vectorised}
    rows = []
    pool = executors.make_executor("process", workers, None)
    try:
        executors.warm_up(pool, workers)
        for repeat, name in measure.interleaved(list(ways), repeats):
            seconds, labels = measure.timed(ways[name])
            rows.append({"way": name, "points": n, "repeat": repeat, "seconds": seconds,
                         "same_labels": labels == expected, "workers": workers,
                         "start_method": config.start_method()})
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return rows


# --- exercise 08b.2: vectorise the assignment step yourself ---


@dataclass
class AssignmentCheck:
    """A learner's assignment step run on the same points as the Python loops, both timed."""

    points: int
    centres: int
    expected: list[int]
    returned: Any = None
    python_seconds: float = 0.0
    answer_seconds: float = 0.0
    error: BaseException | None = None

    @property
    def speedup(self) -> float:
        return self.python_seconds / self.answer_seconds if self.answer_seconds else 0.0


def check_assignment(fn: Any, n: int | None = None, k: int = CENTRES,
                     time_limit: float = 20.0) -> AssignmentCheck:
    """Time ``fn(points_array, centres_array)`` (best of three) against the Python loops.

    The learner's function runs on a thread; TimeoutError if it has not returned after
    ``time_limit`` seconds.
    """
    n = n or int(config.budget(100_000, 50_000))
    points, centres = make_points(n, k, seed=11)
    array_points, array_centres = np.array(points), np.array(centres)
    python_seconds, expected = measure.timed(lambda: production.nearest_centres(points, centres))
    check = AssignmentCheck(n, k, expected, python_seconds=python_seconds)

    def run() -> None:
        times = []
        for _ in range(3):
            seconds, check.returned = measure.timed(lambda: fn(array_points, array_centres))
            times.append(seconds)
        check.answer_seconds = min(times)

    check.error = learner_code.run_with_time_limit(run, time_limit, name="exercise-08b.2",
                                                   what="the assignment step")
    return check
