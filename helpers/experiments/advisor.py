"""Should this job run in parallel, and how? A cost model that explains its answer.

    CostModel.measure()          this machine: per-task cost, per-byte cost, start cost
          │
          ▼
    advise(task_seconds, payload_bytes=, cpus=, gil_releasing=, tasks=)
          │  predicts the job's time three ways (serial, threads, processes)
          ▼
    Advice: choice, executor, workers, chunksize, predicted speedups, reasons

The model, for ``n`` tasks of ``t`` seconds carrying ``b`` bytes each, on ``p`` workers:

- serial: ``n·t``
- threads: ``n·t`` when the work holds the GIL (pure Python with the GIL on);
  ``max(n·t/p, n·h_thread) + t`` when it releases the GIL (hashlib, zlib, NumPy) or
  the kernel runs with the GIL off (``t``: the last task finishing alone). Threads share
  memory, so payloads cost nothing to send.
- processes, in chunks of ``k`` tasks: ``start + max(n·t/p', n·(h/k + b·c)) + k·t``,
  where the parent hands out chunks one after another (``h`` each), pickles every
  payload (``c`` seconds per byte), ``p'`` is the number of workers that get a chunk
  at all, and ``k·t`` is the last chunk finishing alone.

It is a model: it leaves out shared caches, memory bandwidth, turbo clocks and noisy
neighbours, so it is optimistic on many cores. Notebook 08b checks it against measured
runs, and draws it beside the reference machines' measured speedups (``data/reference``).
Parent side only (standard library).
"""

from __future__ import annotations

import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from helpers.core import config, machine, workloads

CHOICES = ("serial", "threads", "processes")
#: Below this predicted speedup, parallelism is not worth its complexity.
WORTH_IT = 1.3
#: Chunks are made big enough that the per-chunk cost is at most this share of the work.
OVERHEAD_SHARE = 0.05
#: ...but small enough that every worker gets at least this many chunks (balance).
CHUNKS_PER_WORKER = 4


@dataclass(frozen=True)
class CostModel:
    """What parallel work costs on one machine, in seconds (measured, not guessed)."""

    per_task_seconds: float  # parent's cost per task sent to a process (one submit each)
    seconds_per_byte: float  # pickling a payload, sending it through a pipe, unpickling it
    start_seconds: float  # a new process pool's first result
    thread_per_task_seconds: float  # ThreadPoolExecutor's cost per submitted task
    start_method: str
    source: str = "measured on this machine"

    def __post_init__(self) -> None:
        for name in ("per_task_seconds", "seconds_per_byte", "start_seconds",
                     "thread_per_task_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a non-negative number of seconds, "
                                 f"got {value!r}")

    @classmethod
    def measure(cls, start_method: str | None = None, budget_seconds: float = 1.0) -> CostModel:
        """Measure the four costs on this machine in about ``budget_seconds`` (2 workers)."""
        method = start_method or config.start_method()
        context = config.mp_context(method)
        tiny = max(200, int(2000 * budget_seconds))
        payload = b"\0" * (8 * 2**20)
        start = time.perf_counter()
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            pool.submit(workloads.noop).result()
            start_seconds = time.perf_counter() - start
            per_task = []
            per_byte = []
            for _ in range(3):
                began = time.perf_counter()
                for future in [pool.submit(workloads.noop) for _ in range(tiny)]:
                    future.result()
                per_task.append((time.perf_counter() - began) / tiny)
                began = time.perf_counter()
                pool.submit(len, payload).result()
                per_byte.append(max(0.0, time.perf_counter() - began - per_task[-1])
                                / len(payload))
        thread_per_task = []
        with ThreadPoolExecutor(2) as threads:
            for _ in range(3):
                began = time.perf_counter()
                for future in [threads.submit(workloads.noop) for _ in range(tiny)]:
                    future.result()
                thread_per_task.append((time.perf_counter() - began) / tiny)
        return cls(statistics.median(per_task), statistics.median(per_byte), start_seconds,
                   statistics.median(thread_per_task), method)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Advice:
    """What ``advise`` recommends, with its predictions and its reasons."""

    choice: str  # "serial", "threads" or "processes"
    executor: str  # what to write
    workers: int
    chunksize: int
    predicted_speedup: float
    predicted_seconds: dict[str, float]  # per choice
    reasons: list[str] = field(default_factory=list)

    @property
    def predicted_speedups(self) -> dict[str, float]:
        serial = self.predicted_seconds["serial"]
        return {c: serial / s for c, s in self.predicted_seconds.items()}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "predicted_speedups": self.predicted_speedups}

    def _repr_markdown_(self) -> str:
        lines = [f"**Advice: {self.choice}** — `{self.executor}` "
                 f"(predicted speedup {self.predicted_speedup:.2f}×, a model)", ""]
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n".join([f"Advice: {self.choice} — {self.executor} "
                          f"(predicted speedup {self.predicted_speedup:.2f}×, a model)",
                          *[f"  - {reason}" for reason in self.reasons]])


def chunk_size(task_seconds: float, tasks: int, workers: int, model: CostModel) -> int:
    """Tasks per chunk: enough to hide the per-chunk cost, few enough to keep balance."""
    hide_overhead = math.ceil(model.per_task_seconds / (OVERHEAD_SHARE * task_seconds))
    keep_balance = max(1, tasks // (CHUNKS_PER_WORKER * workers))
    return max(1, min(hide_overhead, keep_balance))


def predict_seconds(choice: str, *, task_seconds: float, payload_bytes: int, tasks: int,
                    workers: int, chunksize: int, gil_releasing: bool,
                    model: CostModel) -> float:
    """The model's time for the whole job (see the module docstring)."""
    work = tasks * task_seconds
    if choice == "serial" or workers == 1 and choice == "threads":
        return work
    if choice == "threads":
        if not gil_releasing:
            return work + tasks * model.thread_per_task_seconds
        return max(work / workers, tasks * model.thread_per_task_seconds) + task_seconds
    if choice == "processes":
        chunks = math.ceil(tasks / chunksize)
        busy = min(workers, chunks)
        parent = tasks * (model.per_task_seconds / chunksize
                          + payload_bytes * model.seconds_per_byte)
        return model.start_seconds + max(work / busy, parent) + chunksize * task_seconds
    raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")


def advise(task_seconds: float, *, payload_bytes: int = 0, cpus: int | None = None,
           gil_releasing: bool = False, tasks: int = 1000,
           model: CostModel | None = None) -> Advice:
    """Recommend serial, threads or processes for ``tasks`` tasks, and say why.

    ``task_seconds``: one task's work; ``payload_bytes``: data each task carries to
    its worker; ``cpus``: CPUs you may use (default: this kernel's usable CPUs);
    ``gil_releasing``: the work runs in C that releases the GIL (hashlib, zlib,
    Pillow, NumPy). A free-threaded Python running with the GIL off counts as
    GIL-releasing for all work (read when ``advise`` is called).
    ``model``: the costs (default: measured on this machine, once per kernel).
    """
    _check("task_seconds", task_seconds, positive=True)
    _check("payload_bytes", payload_bytes)
    _check("tasks", tasks, positive=True, integer=True)
    if cpus is None:
        cpus = machine.usable_cpus()
    _check("cpus", cpus, positive=True, integer=True)
    if not isinstance(gil_releasing, bool):
        raise ValueError(f"gil_releasing must be True or False, got {gil_releasing!r}")
    model = model or default_model()
    free_threaded = not machine.gil_enabled()
    releases = gil_releasing or free_threaded

    workers = min(cpus, tasks)
    chunks = chunk_size(task_seconds, tasks, workers, model)
    seconds = {choice: predict_seconds(choice, task_seconds=task_seconds,
                                       payload_bytes=payload_bytes, tasks=tasks,
                                       workers=workers, chunksize=chunks,
                                       gil_releasing=releases, model=model)
               for choice in CHOICES}
    speedups = {c: seconds["serial"] / s for c, s in seconds.items()}
    best = min(CHOICES, key=lambda c: seconds[c])
    reasons = [f"The job: {tasks} tasks × {_duration(task_seconds)} = "
               f"{_duration(tasks * task_seconds)} of work; {cpus} usable CPU(s)."]
    if cpus == 1:
        best = "serial"
        reasons.append("One usable CPU: workers would only take turns on it. Make the "
                       "serial code faster (profile, vectorise with NumPy) instead.")
    elif speedups[best] < WORTH_IT:
        best = "serial"
        reasons.append(f"No way predicts more than {WORTH_IT}× "
                       f"(threads {speedups['threads']:.2f}×, processes "
                       f"{speedups['processes']:.2f}×): the overheads eat the gain. Keep it "
                       "serial; vectorise the work, or give each task more of it.")
    reasons += _explain(best, task_seconds, payload_bytes, tasks, workers, chunks, releases,
                        free_threaded, model)
    executor = {
        "serial": "a plain loop (or NumPy over the whole array)",
        "threads": f"ThreadPoolExecutor(max_workers={workers})",
        "processes": (f"ProcessPoolExecutor({workers}).map(fn, items, chunksize={chunks}) "
                      f"or joblib Parallel(n_jobs={workers})"),
    }[best]
    return Advice(best, executor, 1 if best == "serial" else workers,
                  chunks if best == "processes" else 1, speedups[best], seconds, reasons)


def _explain(best: str, task_seconds: float, payload_bytes: int, tasks: int, workers: int,
             chunks: int, releases: bool, free_threaded: bool, model: CostModel) -> list[str]:
    reasons = []
    per_task_transfer = payload_bytes * model.seconds_per_byte
    if payload_bytes and per_task_transfer > task_seconds / workers:
        reasons.append(f"Each payload ({_size(payload_bytes)}) costs about "
                       f"{_duration(per_task_transfer)} to pickle and send, against "
                       f"{_duration(task_seconds)} of work: the parent cannot hand out work "
                       "as fast as the workers do it. Send names, not bytes (shared memory, "
                       "a file), or use threads if the work releases the GIL.")
    if releases:
        why = "the GIL is off on this kernel" if free_threaded else "the work releases the GIL"
        reasons.append(f"Threads can run in parallel here ({why}), share memory (payloads "
                       "cost nothing to send) and start instantly.")
    else:
        reasons.append("The work holds the GIL, so threads run it one at a time; only "
                       "processes can use more than one CPU.")
    if best == "processes":
        reasons.append(f"{workers} processes: one per usable CPU (more only take turns). "
                       f"Chunks of {chunks}: a task handed out alone costs about "
                       f"{_duration(model.per_task_seconds)}, "
                       f"{model.per_task_seconds / task_seconds:.0%} of its work.")
        if model.start_seconds > 0.1 * tasks * task_seconds / workers:
            reasons.append(f"Starting the pool ({_duration(model.start_seconds)}, "
                           f"{model.start_method}) is a noticeable part of this job: keep "
                           "one pool for many jobs.")
    return reasons


_default_model: CostModel | None = None


def default_model() -> CostModel:
    """This machine's costs, measured on first use (about a second) and kept."""
    global _default_model
    if _default_model is None:
        _default_model = CostModel.measure()
    return _default_model


def _check(name: str, value: Any, positive: bool = False, integer: bool = False) -> None:
    kind = "a positive" if positive else "a non-negative"
    wanted = f"{kind} {'whole number' if integer else 'number'}"
    ok = (not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _size(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def speedup_for_cores(task_seconds: float, cores: int, tasks: int, model: CostModel,
                      gil_releasing: bool = False) -> float:
    """The model's best speedup when paying for ``cores`` CPUs (for the money plot)."""
    workers = min(cores, tasks)
    chunks = chunk_size(task_seconds, tasks, workers, model)
    serial = tasks * task_seconds
    best = min(predict_seconds(c, task_seconds=task_seconds, payload_bytes=0, tasks=tasks,
                               workers=workers, chunksize=chunks, gil_releasing=gil_releasing,
                               model=model)
               for c in CHOICES)
    return serial / best


__all__ = ["CostModel", "Advice", "advise", "chunk_size", "predict_seconds", "default_model",
           "speedup_for_cores", "CHOICES", "WORTH_IT"]

