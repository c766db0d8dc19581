"""``WorkerPool.stats()``: what the trace says about a pool's run, in one record.

Standard library only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from helpers.core.trace import TaskRecord


@dataclass(frozen=True)
class Percentiles:
    """Seconds at the 50th, 90th and 99th percentile (0.0 when nothing has run)."""

    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0


@dataclass(frozen=True)
class PoolStats:
    """A pool's run so far: how tasks ended, how long they waited and ran, who was busy."""

    completed: int  # returned a result
    failed: int  # raised (their own exception, or could not be sent or received)
    crashed: int  # their worker died while running them
    timed_out: int  # ran past task_timeout
    cancelled: int  # cancelled before or while running
    workers_replaced: int  # after a crash, a timeout or a cancel
    workers_retired: int  # max_tasks_per_child or max_memory_per_child reached
    queue_wait: Percentiles  # submitted -> started, per task in the trace
    run_time: Percentiles  # started -> finished
    utilisation: dict[str, float] = field(default_factory=dict)  # worker -> busy share

    def as_markdown(self) -> str:
        """A small table, for a notebook cell."""
        rows = [
            "| | p50 | p90 | p99 |", "|---|---|---|---|",
            *(f"| {name} | {p.p50 * 1e3:.2f} ms | {p.p90 * 1e3:.2f} ms | {p.p99 * 1e3:.2f} ms |"
              for name, p in (("queue wait", self.queue_wait), ("run time", self.run_time))),
        ]
        busy = ", ".join(f"{w}: {share:.0%}" for w, share in self.utilisation.items())
        return ("\n".join(rows) + f"\n\n{self.completed} completed, {self.failed} failed, "
                f"{self.crashed} crashed, {self.timed_out} timed out, {self.cancelled} "
                f"cancelled; workers replaced {self.workers_replaced}, retired "
                f"{self.workers_retired}. Busy: {busy or 'no tasks traced'}.")


def percentiles(values: list[float]) -> Percentiles:
    """Nearest-rank percentiles (no interpolation: each is a time that really happened)."""
    if not values:
        return Percentiles()
    ordered = sorted(values)

    def rank(share: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.5) - 1))]

    return Percentiles(rank(0.50), rank(0.90), rank(0.99))


def utilisation(records: list[TaskRecord]) -> dict[str, float]:
    """Each worker's busy time over the span of the whole trace (first start to last end)."""
    if not records:
        return {}
    span = max(r.finished for r in records) - min(r.started for r in records)
    busy: dict[str, float] = defaultdict(float)
    for record in records:
        busy[record.worker] += record.run_seconds
    return {worker: (seconds / span if span > 0 else 1.0) for worker, seconds in busy.items()}


def summarize(records: list[TaskRecord], counts: dict[str, int]) -> PoolStats:
    return PoolStats(
        completed=counts["completed"], failed=counts["failed"], crashed=counts["crashed"],
        timed_out=counts["timed_out"], cancelled=counts["cancelled"],
        workers_replaced=counts["workers_replaced"], workers_retired=counts["workers_retired"],
        queue_wait=percentiles([r.queued_seconds for r in records]),
        run_time=percentiles([r.run_seconds for r in records]),
        utilisation=utilisation(records),
    )
