"""Why no speedup? The diagnosis of a course benchmark result.

It reads a benchmark result (``python -m helpers.bench``, or notebook 10): the machine
card and the summary of medians (read once into a :class:`~helpers.bench.schema.Summary`).
Each cause below looks for its own evidence in those numbers and, when it finds it,
returns a :class:`Finding` that quotes them. Findings are ranked by ``impact``: roughly
the share of the possible speedup the cause costs on this machine (a ranking aid, not a
precise figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helpers.bench.schema import Summary


@dataclass(frozen=True)
class Finding:
    """One reason parallel code does not speed up here, with the measured evidence."""

    cause: str
    title: str
    evidence: str
    fix: str
    impact: float

    def markdown(self) -> str:
        return f"**{self.title}** — {self.evidence}\n  *Fix:* {self.fix}"


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _or_none(quota: float | None) -> str:
    if quota is None:
        return "none"
    return f"{quota:g} CPU{'' if quota == 1 else 's'}"


def _one_cpu(card: dict[str, Any], summary: Summary) -> Finding | None:
    if card.get("usable_cpus") != 1:
        return None
    best = summary.best("python", "WorkerPool")
    measured = f"; the best process speedup measured was {best[1]:.2f}×" if best else ""
    return Finding(
        "one-cpu", "This process can use only one CPU",
        f"os.cpu_count() says {card.get('logical_cpus')}, but affinity allows "
        f"{card.get('affinity_cpus') or 'unknown'} and the container quota is "
        f"{_or_none(card.get('cgroup_quota_cpus'))}: 1 usable CPU{measured}.",
        "Nothing CPU-bound can run in parallel here. Ask for more CPUs (a bigger VM, "
        "`docker run --cpus N`, a Kubernetes CPU limit of N) or run on another machine.",
        1.0)


def _cpu_limit(card: dict[str, Any], summary: Summary) -> Finding | None:
    logical, usable = card.get("logical_cpus") or 1, card.get("usable_cpus") or 1
    if usable >= logical or usable == 1:
        return None
    quota, affinity = card.get("cgroup_quota_cpus"), card.get("affinity_cpus")
    limits = []
    if quota is not None and quota < logical:
        limits.append(f"a cgroup CPU quota of {quota:g} CPUs")
    if affinity is not None and affinity < logical:
        limits.append(f"an affinity mask of {affinity} CPUs")
    return Finding(
        "cpu-limit", "The container or scheduler allows fewer CPUs than the machine has",
        f"os.cpu_count() says {logical}, but {' and '.join(limits) or 'a limit'} leaves "
        f"{usable} usable: a pool sized by os.cpu_count() would run {logical / usable:.1f}× "
        "more workers than CPUs and be throttled.",
        "Size pools from the usable count (`helpers.core.machine.usable_cpus()`; "
        "`os.process_cpu_count()` on Python 3.13+ sees affinity but not quotas), "
        "or raise the container's CPU limit.",
        0.9 * (1 - usable / logical))


def _gil_threads(card: dict[str, Any], summary: Summary) -> Finding | None:
    threads = summary.best("python", "threads")
    processes = summary.best("python", "WorkerPool")
    if not card.get("gil_enabled", True) or threads is None or processes is None:
        return None
    workers, speedup = threads
    if workers < 2 or speedup > 0.6 * workers or processes[1] < speedup + 0.2:
        return None
    releasing = summary.best("sha256", "threads")
    also = (f"; GIL-releasing sha256 on the same threads: {releasing[1]:.2f}×"
            if releasing else "")
    return Finding(
        "gil-threads", "Pure-Python work on threads is held back by the GIL",
        f"pure-Python work on {workers} threads: {speedup:.2f}×; on {processes[0]} processes "
        f"(WorkerPool): {processes[1]:.2f}×{also}.",
        "Run pure-Python work in processes (WorkerPool, ProcessPoolExecutor, joblib's loky), "
        "move the hot loop into a library that releases the GIL (NumPy, hashlib, zlib, "
        "Pillow), or use a free-threaded Python (3.13t/3.14t).",
        max(0.0, 1 - speedup / processes[1]))


def _small_tasks(card: dict[str, Any], summary: Summary) -> Finding | None:
    table = summary.task_size
    points = table.efficiency.get("ProcessPoolExecutor", {})
    if len(points) < 2:
        return None
    sizes = sorted(points)
    small, large = sizes[0], sizes[-1]
    if points[small] >= 0.5 or points[large] - points[small] < 0.2:
        return None
    enough = table.break_even_ms("ProcessPoolExecutor", 0.8)
    per_task = summary.overhead_seconds_per_task.get("ProcessPoolExecutor")
    overhead = f"; each submit costs about {per_task * 1e6:.0f} µs" if per_task else ""
    batched = table.efficiency.get("WorkerPool", {}).get(small)
    batching = (f"; WorkerPool, which batches small tasks, reaches {batched:.0%} at {small:g} ms"
                if batched is not None else "")
    return Finding(
        "small-tasks", "Tasks too small for their overhead",
        f"ProcessPoolExecutor on {_plural(table.workers, 'worker')}, one submit per task: "
        f"{points[small]:.0%} efficiency with {small:g} ms tasks, {points[large]:.0%} with "
        f"{large:g} ms tasks{overhead}{batching}.",
        f"Give each task more work (here, tasks of {enough or large:g} ms or more reach 80 %), "
        "or batch: `map(..., chunksize=N)`, joblib's `batch_size=\"auto\"`, WorkerPool's "
        "automatic batching.",
        points[large] - points[small])


def _blas_oversubscription(card: dict[str, Any], summary: Summary) -> Finding | None:
    blas = summary.blas
    if blas is None or blas.oversubscription_slowdown < 1.15:
        return None
    seconds = blas.seconds
    return Finding(
        "blas-oversubscription", "BLAS threads × worker processes oversubscribe the CPUs",
        f"{card.get('usable_cpus')} processes each running {blas.blas_threads} BLAS "
        f"threads took {seconds['processes, BLAS threads']:.2f} s; with one BLAS thread per "
        f"process {seconds['processes, 1 BLAS thread']:.2f} s "
        f"({blas.oversubscription_slowdown:.2f}× slower oversubscribed).",
        "Give each worker one BLAS thread (`threadpoolctl.threadpool_limits(1)` in the "
        "initializer, `OMP_NUM_THREADS=1` before starting workers, joblib's "
        "`inner_max_num_threads`), or use one process and let BLAS use the CPUs.",
        1 - 1 / blas.oversubscription_slowdown)


def _slow_start_method(card: dict[str, Any], summary: Summary) -> Finding | None:
    method = summary.start_method or card.get("start_method")
    first = summary.first_result_seconds
    if method not in ("spawn", "forkserver") or method not in first:
        return None
    seconds = min(first[method].values())
    fork = min(first["fork"].values()) if "fork" in first else None
    if seconds < 0.1 or (fork is not None and seconds < 2 * fork):
        return None
    compared = f" (fork: {fork * 1000:.0f} ms)" if fork is not None else ""
    extra = seconds - (fork or 0.0)
    return Finding(
        "slow-start", f"The {method} start method pays for a fresh interpreter per worker",
        f"a new pool under {method} returns its first result after {seconds * 1000:.0f} ms"
        f"{compared}: each worker starts Python and imports the task's modules again.",
        "Start the pool once and reuse it for many tasks; keep what workers import light "
        "(no heavy imports at the top of task modules); on Linux, forkserver with "
        "`multiprocessing.set_forkserver_preload([...])`.",
        min(0.5, extra / (extra + 1.0)))  # the share of a one-second job


def _noisy(card: dict[str, Any], summary: Summary) -> Finding | None:
    worst, where = 0.0, ""
    for workload, table in summary.speedup.items():
        for executor, points in table.items():
            for workers, point in points.items():
                spread = (point.high - point.low) / point.median
                if spread > worst:
                    worst, where = spread, f"{executor}, {workload}, {workers} workers"
    if worst <= 0.3:
        return None
    return Finding(
        "noisy", "The measurements vary a lot between repeats",
        f"the speedup's range is {worst:.0%} of its median ({where}): something else was "
        "using the CPUs, or the CPU changed speed.",
        "Close other programs, plug a laptop in, run again with more repeats; trust "
        "differences larger than the spread only.",
        min(0.3, worst / 4))


#: The ``cause`` of every Finding, in the order the checks run.
CAUSE_IDS = ("one-cpu", "cpu-limit", "gil-threads", "small-tasks", "blas-oversubscription",
             "slow-start", "noisy")
CAUSES = (_one_cpu, _cpu_limit, _gil_threads, _small_tasks, _blas_oversubscription,
          _slow_start_method, _noisy)


def why_no_speedup(document: dict[str, Any]) -> list[Finding]:
    """Every cause the benchmark result shows evidence of, biggest impact first."""
    card, summary = document.get("machine", {}), Summary.from_json(document.get("summary", {}))
    findings = [f for cause in CAUSES if (f := cause(card, summary)) is not None]
    return sorted(findings, key=lambda f: f.impact, reverse=True)


def diagnosis_markdown(findings: list[Finding]) -> str:
    """The ranked findings as a Markdown list (or the all-clear)."""
    if not findings:
        return ("**No cause found.** The measurements show nothing holding the speedup back: "
                "processes scale, tasks are large enough, BLAS threads fit the CPUs.")
    return "\n".join(f"{rank}. {f.markdown()}" for rank, f in enumerate(findings, 1))
