"""The course benchmark's summary as typed records: what ``document["summary"]`` holds.

``suite.summarize`` builds a :class:`Summary` from the records and the result document
stores ``summary.to_json()``. Everything that reads a result (the diagnosis, notebook
10's comparison, the exercise checkers) turns it back once, with
``Summary.from_json(document["summary"])``, and then reads attributes::

    Summary
      usable_cpus, start_method
      speedup                      {workload: {executor: {workers: SpeedupPoint}}}
      task_size                    TaskSizeTable: {executor: {task ms: efficiency}}, …
      overhead_seconds_per_task    {executor: seconds}      (and overhead_range)
      parent_cpu_seconds_per_task  {executor: seconds}
      loop_max_lag_seconds         {strategy: seconds}
      first_result_seconds         {start method: {executor: seconds}} (and first_result_range)
      blas                         Blas, or None when the BLAS part did not run

JSON object keys are always strings. Here worker counts are ints and task durations
(ms) floats; ``to_json`` writes them back as the strings the files hold (``"16"``,
``"0.1"``), so a document on disk keeps the same shape. A range is ``(lowest, highest)``
over the repeats (a two-item list in JSON).

The raw ``document["records"]`` beside the summary are ``helpers.core.measure.Measurement``
records; the scaling part's (``suite.ScalingMeasurement``) add, for every run on a pool,
``task_seconds_median`` and ``task_seconds_max`` (tasks timed inside the workers) and
``idle_share``. Files recorded before these fields existed lack them, and the diagnosis
then says nothing about stragglers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: (lowest, highest) over the repeats.
Range = tuple[float, float]


def _range(values: list[float]) -> Range:
    low, high = values
    return (low, high)


def _ms_key(ms: float) -> str:
    """A task duration in ms as the summary's JSON key: 0.1 -> "0.1", 10.0 -> "10"."""
    return f"{ms:g}"


@dataclass(frozen=True)
class SpeedupPoint:
    """Speedup over serial at one worker count: the median over the repeats and its range."""

    median: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeedupPoint:
        return cls(median=data["median"], low=data["low"], high=data["high"])


@dataclass(frozen=True)
class TaskSizeTable:
    """One fixed job cut into tasks of different sizes, on ``workers`` workers.

    ``efficiency[executor][ms]`` is serial time / (parallel time × workers), the median
    over the repeats; ``range[executor][ms]`` its lowest and highest value.
    """

    workers: int | None = None
    efficiency: dict[str, dict[float, float]] = field(default_factory=dict)
    range: dict[str, dict[float, Range]] = field(default_factory=dict)

    def break_even_ms(self, executor: str = "ProcessPoolExecutor",
                      efficiency: float = 0.8) -> float | None:
        """The shortest measured task (ms) that reached ``efficiency``; None if none did."""
        points = self.efficiency.get(executor, {})
        return next((ms for ms in sorted(points) if points[ms] >= efficiency), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "efficiency": {executor: {_ms_key(ms): value for ms, value in points.items()}
                           for executor, points in self.efficiency.items()},
            "range": {executor: {_ms_key(ms): list(span) for ms, span in points.items()}
                      for executor, points in self.range.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskSizeTable:
        """``range`` may be missing: the first reference files were written without it."""
        return cls(
            workers=data.get("workers"),
            efficiency={executor: {float(ms): value for ms, value in points.items()}
                        for executor, points in data.get("efficiency", {}).items()},
            range={executor: {float(ms): _range(span) for ms, span in points.items()}
                   for executor, points in data.get("range", {}).items()},
        )


@dataclass(frozen=True)
class Blas:
    """NumPy matmul in processes, in seconds per configuration (``suite.BLAS_CONFIGS``)."""

    seconds: dict[str, float]
    blas_threads: int | None  # the most threads a BLAS pool runs here; None if unknown
    oversubscription_slowdown: float  # "processes, BLAS threads" / "processes, 1 BLAS thread"

    def to_json(self) -> dict[str, Any]:
        return {"seconds": dict(self.seconds), "blas_threads": self.blas_threads,
                "oversubscription_slowdown": self.oversubscription_slowdown}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Blas:
        return cls(seconds=dict(data["seconds"]), blas_threads=data.get("blas_threads"),
                   oversubscription_slowdown=data["oversubscription_slowdown"])


@dataclass(frozen=True)
class Summary:
    """The medians (and ranges) of one course benchmark run, part by part.

    A part that did not run leaves its table empty (``blas``: None).
    """

    usable_cpus: int | None = None
    start_method: str | None = None  # the start method the scaling part's WorkerPool used
    speedup: dict[str, dict[str, dict[int, SpeedupPoint]]] = field(default_factory=dict)
    task_size: TaskSizeTable = field(default_factory=TaskSizeTable)
    overhead_seconds_per_task: dict[str, float] = field(default_factory=dict)
    overhead_range: dict[str, Range] = field(default_factory=dict)
    parent_cpu_seconds_per_task: dict[str, float] = field(default_factory=dict)
    loop_max_lag_seconds: dict[str, float] = field(default_factory=dict)
    first_result_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    first_result_range: dict[str, dict[str, Range]] = field(default_factory=dict)
    blas: Blas | None = None

    def best(self, workload: str, executor: str) -> tuple[int, float] | None:
        """(most workers, median speedup there) for one workload and executor, if measured."""
        points = self.speedup.get(workload, {}).get(executor, {})
        if not points:
            return None
        workers = max(points)
        return workers, points[workers].median

    def to_json(self) -> dict[str, Any]:
        """The summary as plain JSON data, in the shape the result files hold."""
        return {
            "usable_cpus": self.usable_cpus,
            "start_method": self.start_method,
            "speedup": {workload: {executor: {str(workers): point.to_json()
                                              for workers, point in points.items()}
                                   for executor, points in table.items()}
                        for workload, table in self.speedup.items()},
            "task_size": self.task_size.to_json(),
            "overhead_seconds_per_task": dict(self.overhead_seconds_per_task),
            "overhead_range": {executor: list(span)
                               for executor, span in self.overhead_range.items()},
            "parent_cpu_seconds_per_task": dict(self.parent_cpu_seconds_per_task),
            "loop_max_lag_seconds": dict(self.loop_max_lag_seconds),
            "first_result_seconds": {method: dict(pools)
                                     for method, pools in self.first_result_seconds.items()},
            "first_result_range": {method: {executor: list(span)
                                            for executor, span in pools.items()}
                                   for method, pools in self.first_result_range.items()},
            "blas": self.blas.to_json() if self.blas is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        """Read ``document["summary"]``, from a file or from ``to_json()``.

        Every key may be missing, for two reasons:

        - ``overhead_range``, ``first_result_range`` and ``task_size``'s ``range`` were
          added after the first reference files were measured
          (``data/reference/course-2cpu-*.json`` lack them): they read as empty, and the
          plots draw those bars without whiskers.
        - A summary written by hand, or cut down to the parts a test needs, holds only
          some tables: a missing table reads as empty, a missing number or BLAS part as
          None, so the diagnosis reads what there is.
        """
        blas = data.get("blas")
        return cls(
            usable_cpus=data.get("usable_cpus"),
            start_method=data.get("start_method"),
            speedup={workload: {executor: {int(workers): SpeedupPoint.from_json(point)
                                           for workers, point in points.items()}
                                for executor, points in table.items()}
                     for workload, table in data.get("speedup", {}).items()},
            task_size=TaskSizeTable.from_json(data.get("task_size", {})),
            overhead_seconds_per_task=dict(data.get("overhead_seconds_per_task", {})),
            overhead_range={executor: _range(span)
                            for executor, span in data.get("overhead_range", {}).items()},
            parent_cpu_seconds_per_task=dict(data.get("parent_cpu_seconds_per_task", {})),
            loop_max_lag_seconds=dict(data.get("loop_max_lag_seconds", {})),
            first_result_seconds={method: dict(pools) for method, pools
                                  in data.get("first_result_seconds", {}).items()},
            first_result_range={method: {executor: _range(span)
                                         for executor, span in pools.items()}
                                for method, pools in data.get("first_result_range", {}).items()},
            blas=Blas.from_json(blas) if blas is not None else None,
        )
