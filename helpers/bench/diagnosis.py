"""Why no speedup? The diagnosis of a course benchmark result.

It reads a benchmark result (``python -m helpers.bench``, or notebook 10) once into an
:class:`Evidence` record: the machine card, the summary of medians (a
:class:`~helpers.bench.schema.Summary`), the conditions each part ran in (clock, steal,
other programs, throttling: :mod:`helpers.core.hardware`) and the raw records. Each cause
below looks for its own evidence there and, when it finds it, returns a :class:`Finding`
that quotes it. A cause whose evidence the result lacks (an older result, an OS that does
not say) stays silent rather than guess. Findings are ranked by ``impact``: roughly
the share of the possible speedup the cause costs on this machine (a ranking aid, not a
precise figure).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from helpers.bench.schema import Summary
from helpers.core.hardware import Conditions


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


@dataclass(frozen=True)
class Evidence:
    """Everything one benchmark result says, read once for every cause."""

    card: dict[str, Any]
    summary: Summary
    conditions: dict[str, Conditions] = field(default_factory=dict)  # per part
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, document: dict[str, Any]) -> Evidence:
        conditions = {part: Conditions.from_dict(data)
                      for part, data in (document.get("conditions") or {}).items()}
        return cls(document.get("machine", {}), Summary.from_json(document.get("summary", {})),
                   conditions, list(document.get("records", [])))


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _or_none(quota: float | None) -> str:
    if quota is None:
        return "none"
    return f"{quota:g} CPU{'' if quota == 1 else 's'}"


def _one_cpu(run: Evidence) -> Finding | None:
    card, summary = run.card, run.summary
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


def _cpu_limit(run: Evidence) -> Finding | None:
    card = run.card
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


def _gil_threads(run: Evidence) -> Finding | None:
    card, summary = run.card, run.summary
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


def _small_tasks(run: Evidence) -> Finding | None:
    summary = run.summary
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


def _blas_oversubscription(run: Evidence) -> Finding | None:
    card, summary = run.card, run.summary
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


def _slow_start_method(run: Evidence) -> Finding | None:
    card, summary = run.card, run.summary
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


def _noisy(run: Evidence) -> Finding | None:
    summary = run.summary
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


# --- the hardware and its neighbours ---


def _coarse_speedup(summary: Summary, workers: int) -> float | None:
    """The pure-Python process speedup at ``workers`` (WorkerPool, else ProcessPoolExecutor)."""
    table = summary.speedup.get("python", {})
    for executor in ("WorkerPool", "ProcessPoolExecutor"):
        point = table.get(executor, {}).get(workers)
        if point is not None:
            return point.median
    return None


def _shared_cores(run: Evidence) -> Finding | None:
    card, summary = run.card, run.summary
    usable = card.get("usable_cpus") or 1
    if usable < 2:
        return None
    speedup = _coarse_speedup(summary, usable)
    measured = "" if speedup is None else (
        f"; pure-Python work on {usable} processes reached {speedup:.2f}×")
    if card.get("usable_share_cores"):
        return Finding(
            "smt", "Some usable CPUs are hyper-threads of the same physical core",
            f"the OS shows {card.get('threads_per_core')} logical CPUs per core, and the CPUs "
            f"this process may use include siblings{measured}. Two hyper-threads share one "
            "core's execution units: the second one adds far less than a whole core.",
            "Count physical cores, not logical CPUs, when you size a pool for CPU-bound "
            "work (`psutil.cpu_count(logical=False)`); on a cloud VM, a vCPU is usually one "
            "hyper-thread, so 2 vCPUs may be one core.",
            0.0 if speedup is None else max(0.0, 1 - speedup / usable))
    if speedup is None or not card.get("virtualisation") or speedup >= 0.8 * min(usable, 2) \
            or card.get("threads_per_core") not in (None, 1):
        return None
    two = _coarse_speedup(summary, 2)
    if two is None or two >= 1.6:
        return None
    quiet = [c for c in run.conditions.values()
             if (c.steal_share or 0) < 0.02 and (c.others_cpus or 0) < 0.25]
    if run.conditions and not quiet:
        return None  # steal or other programs explain it: their own findings say so
    return Finding(
        "smt-suspected", "The virtual CPUs may share physical cores on the host",
        f"this is a virtual machine ({card.get('virtualisation')}) and the OS inside shows one "
        f"thread per core, which a VM cannot be trusted to show; yet a coarse pure-Python "
        f"job on 2 processes reached only {two:.2f}×, with no steal or other load measured "
        "to explain it. Two vCPUs that are the two hyper-threads of one host core behave "
        "exactly like this; the scaling itself is the evidence.",
        "Ask the provider how its vCPUs map to cores (many sell one hyper-thread per "
        "vCPU), or choose an instance type with dedicated cores; expect about one core's "
        "worth per two vCPUs.",
        max(0.0, 1 - two / 2))


def _clock_drop(run: Evidence) -> Finding | None:
    scaling = run.conditions.get("scaling")
    drop = None if scaling is None else scaling.clock_drop
    if drop is None or drop < 0.1:
        return None
    return Finding(
        "clock-drop", "The CPU clock slowed down while every core was busy",
        f"during the scaling part the clock ranged from {min(scaling.clock_mhz):.0f} to "
        f"{max(scaling.clock_mhz):.0f} MHz ({drop:.0%} lower at its slowest): one busy core "
        "can run faster (boost) than all of them together, so N workers get less than N× "
        "one worker's speed.",
        "Plug a laptop in and pick a performance power profile; on a server, this is the "
        "chip's boost at work: measure at the worker count you will run.",
        min(0.5, drop))


def _steal(run: Evidence) -> Finding | None:
    worst = max(((c.steal_share or 0.0, part) for part, c in run.conditions.items()),
                default=(0.0, ""))
    if worst[0] < 0.03:
        return None
    return Finding(
        "steal", "The virtual machine waited for its host (steal time)",
        f"{worst[0]:.0%} of the CPU time during the {worst[1]} part was *stolen*: the "
        "hypervisor gave this VM's virtual CPUs to other guests, so work here simply paused.",
        "Run again at a quieter time, or on an instance with dedicated CPUs; steal above a "
        "few per cent makes every timing here unreliable.",
        min(0.5, 2 * worst[0]))


def _other_programs(run: Evidence) -> Finding | None:
    usable = run.card.get("usable_cpus") or 1
    worst = max(((c.others_cpus or 0.0, part) for part, c in run.conditions.items()),
                default=(0.0, ""))
    if worst[0] < max(0.3, 0.15 * usable):
        return None
    return Finding(
        "other-programs", "Other programs were using the CPUs",
        f"during the {worst[1]} part, programs other than the benchmark kept about "
        f"{worst[0]:.1f} of the {usable} usable CPUs busy on average: the workers took "
        "turns with them.",
        "Close other programs (browsers, builds, other notebooks) and run again; on a shared "
        "workshop server, expect figures to vary with everyone else's load.",
        min(0.6, worst[0] / usable))


def _throttled(run: Evidence) -> Finding | None:
    worst = max(((c.throttled_seconds or 0.0) / c.wall_seconds if c.wall_seconds else 0.0,
                 part, c) for part, c in run.conditions.items()) if run.conditions else None
    if worst is None or worst[0] < 0.02:
        return None
    share, part, conditions = worst
    quota = run.card.get("cgroup_quota_cpus")
    return Finding(
        "throttled", "The container's CPU quota ran out, and the kernel paused it",
        f"during the {part} part the cgroup was throttled in {conditions.throttled_periods} "
        f"scheduling periods, {conditions.throttled_seconds:.2f} s in all "
        f"({share:.0%} of the part's wall time); the quota is {_or_none(quota)}.",
        "Run no more busy workers than the quota allows (the course's usable CPUs do), or "
        "raise the container's CPU limit.",
        min(0.6, share))


def _process_scaling(run: Evidence) -> list[dict[str, Any]]:
    """The scaling part's records of process pools (not serial, not threads)."""
    return [r for r in run.records if r.get("experiment") == "scaling"
            and r.get("executor") not in ("serial", "threads")]


def _imbalance(run: Evidence) -> Finding | None:
    scaling = _process_scaling(run)
    if not scaling:
        return None
    top = max(r["workers"] for r in scaling)
    if top < 2:
        return None
    per_worker = min(r["tasks"] for r in scaling if r["workers"] == top) / top
    if per_worker >= 4:
        return None
    return Finding(
        "imbalance", "Too few tasks per worker: the last round leaves workers idle",
        f"the scaling job gave each of {top} workers only {per_worker:g} task(s): when one "
        "task runs late (a slower core, a moment of other load), the others finish and wait, "
        "so the speedup understates what the machine can do.",
        "Give every worker many tasks (8 or more), or tasks of uneven size in random "
        "order; this benchmark now does, so run it again to compare.",
        min(0.3, 0.5 / per_worker))


_TASK_FIGURES = ("task_seconds_median", "task_seconds_max", "idle_share", "seconds")


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"


def _task_figures(run: Evidence) -> dict[tuple[str, str, int], dict[str, float]]:
    """{(executor, workload, workers): median over the repeats of each of _TASK_FIGURES},
    for the process pools at the most workers; runs without task timings are left out."""
    scaling = [r for r in _process_scaling(run)
               if all(r.get(name) is not None for name in _TASK_FIGURES)]
    top = max((r["workers"] for r in scaling), default=1)
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in scaling:
        if r["workers"] == top and top > 1:
            groups.setdefault((r["executor"], r["workload"], top), []).append(r)
    return {key: {name: statistics.median(r[name] for r in runs) for name in _TASK_FIGURES}
            for key, runs in groups.items()}


def _is_straggling(figures: dict[str, float]) -> bool:
    """The slowest task ran 2× the median or more, its excess alone was a tenth of the
    job's wall time or more, and the workers sat idle 15 % of their time or more."""
    median, slowest = figures["task_seconds_median"], figures["task_seconds_max"]
    return (slowest >= 2 * median and slowest - median >= 0.1 * figures["seconds"]
            and figures["idle_share"] >= 0.15)


def _stragglers(run: Evidence) -> Finding | None:
    straggling = {key: f for key, f in _task_figures(run).items() if _is_straggling(f)}
    if not straggling:
        return None
    (executor, workload, top), figures = max(straggling.items(),
                                             key=lambda item: item[1]["idle_share"])
    return Finding(
        "stragglers", "A few slow tasks kept the job waiting (stragglers)",
        f"{executor} on {_plural(top, 'worker')}, {workload} workload (medians over the "
        f"repeats): the slowest task took {_duration(figures['task_seconds_max'])} against a "
        f"median of {_duration(figures['task_seconds_median'])}, and the workers sat idle "
        f"{figures['idle_share']:.0%} of their time: those that finish early wait for the "
        "late one. This benchmark's tasks are all the same size, so a slower core or a "
        "worker that lost its CPU to other load made them late.",
        "Cut the work into more, smaller tasks so the last round is short; for tasks of "
        "uneven size use `chunksize=1` (no batch of slow tasks stuck on one worker) and "
        "shuffle the order so the long ones do not all come last; check for other load "
        "on the machine.",
        min(0.3, figures["idle_share"]))


#: The ``cause`` of every Finding, in the order the checks run.
CAUSE_IDS = ("one-cpu", "cpu-limit", "gil-threads", "small-tasks", "blas-oversubscription",
             "slow-start", "noisy", "smt", "smt-suspected", "clock-drop", "steal",
             "other-programs", "throttled", "imbalance", "stragglers")
CAUSES = (_one_cpu, _cpu_limit, _gil_threads, _small_tasks, _blas_oversubscription,
          _slow_start_method, _noisy, _shared_cores, _clock_drop, _steal, _other_programs,
          _throttled, _imbalance, _stragglers)


def why_no_speedup(document: dict[str, Any]) -> list[Finding]:
    """Every cause the benchmark result shows evidence of, biggest impact first."""
    run = Evidence.of(document)
    findings = [f for cause in CAUSES if (f := cause(run)) is not None]
    return sorted(findings, key=lambda f: f.impact, reverse=True)


def conditions_markdown(document: dict[str, Any]) -> str:
    """What the machine did during each part: clock, steal, other programs, throttling."""
    run = Evidence.of(document)
    if not run.conditions:
        return ("*This result records no conditions (it predates them): clock, steal and "
                "other programs' CPU are unknown.*")

    def share(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.1%}"

    rows = ["| part | clock (MHz, min–max) | steal | other programs (CPUs) | throttled |",
            "|---|---|---|---|---|"]
    for part, c in run.conditions.items():
        clock = (f"{min(c.clock_mhz):.0f}–{max(c.clock_mhz):.0f}" if c.clock_mhz else "unknown")
        others = "unknown" if c.others_cpus is None else f"{c.others_cpus:.2f}"
        throttled = ("unknown (no cgroup counters)" if c.throttled_seconds is None
                     else f"{c.throttled_seconds:.2f} s")
        rows.append(f"| {part} | {clock} | {share(c.steal_share)} | {others} | {throttled} |")
    return "\n".join(rows)


def diagnosis_markdown(findings: list[Finding]) -> str:
    """The ranked findings as a Markdown list (or the all-clear)."""
    if not findings:
        return ("**No cause found.** The measurements show nothing holding the speedup back: "
                "processes scale, tasks are large enough, BLAS threads fit the CPUs.")
    return "\n".join(f"{rank}. {f.markdown()}" for rank, f in enumerate(findings, 1))
