"""Graded predictions: the learner commits to a number before an experiment, then
compares it with what *their* run measured.

A notebook asks for ``my_prediction = ...`` before the experiment and, after it, calls one
of the functions here with the prediction and the run's result. Like the exercise checks
(:mod:`helpers.view.checks`), they never raise: they show how close the prediction was,
then why the number came out as it did, from the run's own numbers, and return True when
the prediction was within :data:`CLOSE` of the measurement.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from helpers.view.checks import report

#: A prediction within this share of the measurement counts as close.
CLOSE = 0.25

PLACEHOLDER_HINT = ("Write your prediction in the cell *before* the experiment "
                    "(`my_prediction = ...`), run the experiment, then run this cell: the point "
                    "is to commit to a number first.")


def graded(prediction: Any, measured: float, *, what: str, unit: str, why: str) -> bool:
    """Show the prediction beside the measurement and ``why``; True when it was close."""
    if prediction is Ellipsis:
        return report(False, PLACEHOLDER_HINT)
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) \
            or math.isnan(prediction):
        return report(False, f"{what}: give a number, for example `my_prediction = 2` "
                             f"(your prediction is {prediction!r}).")
    gap = abs(prediction - measured) / abs(measured) if measured else abs(prediction)
    said = (f"You predicted **{prediction:g}{unit}**; your run measured **{measured:.3g}{unit}**")
    if gap <= CLOSE:
        return report(True, f"{said}: close. {why}")
    direction = "high" if prediction > measured else "low"
    return report(False, f"{said}: {gap:.0%} too {direction}. {why}")


def inline_lag_ms(prediction: Any, inline_run: Any) -> bool:
    """Notebook 01: the worst loop lag (ms) while CPU work runs inline."""
    task_ms = inline_run.cpu_task_seconds * 1000
    why = (f"Inline, the loop cannot run until the coroutine doing the work reaches an "
           f"`await`, so the heartbeat waits for a whole task: each one was about "
           f"{task_ms:.0f} ms of CPU, and the worst lag is about that long.")
    return graded(prediction, inline_run.max_lag * 1000, what="The worst lag in ms", unit=" ms",
                  why=why)


def thread_speedup(prediction: Any, result: Any, threads: int) -> bool:
    """Notebook 02: the speedup of pure-Python work on ``threads`` threads."""
    measured = result.speedups()[threads].median
    if threads < 2:
        why = "With one usable CPU there is no second CPU for a thread to use."
    elif result.gil_enabled:
        why = ("This run had the GIL on: only one thread runs Python bytecode at a time, so "
               "pure-Python work cannot get faster with threads, however many there are.")
    else:
        why = (f"This run had the GIL off: the {threads} threads ran Python at the same time, "
               "so the speedup could approach the number of threads.")
    return graded(prediction, measured, what="The speedup", unit="×", why=why)


def server_throughput(prediction: Any, rows: Any, workers: int, ms: float, usable: int) -> bool:
    """Notebook 06: requests per second that ``workers`` pre-fork workers served."""
    row = next(r for r in rows if r["workers"] == workers)
    busy = min(workers, usable)
    ceiling = busy * 1000 / ms
    measured = row["throughput_per_s"]
    why = (f"Each request needs {ms:g} ms of one CPU, so {busy} busy CPU(s) can serve at most "
           f"{ceiling:.0f} requests/s; your run reached {measured / ceiling:.0%} of that. The "
           "rest went to parsing, accepting connections and the load generator itself"
           + (f", and {workers} workers can only take turns on {usable} CPUs."
              if workers > usable else "."))
    return graded(prediction, measured, what="Requests per second", unit="/s", why=why)


def backend_speedup(prediction: Any, rows: Any, backend: str, workload: str) -> bool:
    """Notebook 04: the speedup one joblib backend reached on one workload."""
    row = next(r for r in rows if r["backend"] == backend and r["workload"] == workload)
    gil_on = row.get("gil_enabled", True)
    processes = statistics.median(r["speedup"] for r in rows if r["workload"] == workload
                                  and r["backend"] != "threading")
    if backend == "threading" and workload == "python" and gil_on:
        why = ("With the GIL on, threads take turns running Python: about 1×, while the "
               f"process backends reached a median {processes:.2f}× on the same work.")
    elif backend == "threading":
        why = ("These threads ran in parallel: the work released the GIL (or the GIL was "
               f"off). The process backends reached a median {processes:.2f}×.")
    else:
        why = (f"{row['n_jobs']} worker processes can reach at most {row['n_jobs']}×; "
               "sending every task and its result between processes costs some of that.")
    return graded(prediction, row["speedup"], what="The speedup", unit="×", why=why)


def process_speedup(prediction: Any, result: Any) -> bool:
    """Notebooks 00 and 03b: the speedup of the pure-Python job on all usable CPUs."""
    top = max(p for p in result.workers if p <= result.usable_cpus)
    measured = result.speedups()[top].median
    if top == 1:
        why = "With one usable CPU the workers take turns: no speedup is possible."
    else:
        why = (f"Each of the {top} processes has its own interpreter, so pure Python runs on "
               f"{top} CPUs at once; the gap to {top}× is start-up, handing out tasks, the "
               "last task finishing alone, and anything else running on the machine.")
    return graded(prediction, measured, what="The speedup", unit="×", why=why)


def first_result_ms(prediction: Any, rows: Any, method: str) -> bool:
    """Notebook 03: how long a new pool under ``method`` took to return its first result."""
    row = next((r for r in rows if r["method"] == method), None)
    if row is None:
        return report(False, f"{method} is not available on this OS, so there is nothing to "
                             "compare your prediction with.")
    fastest = min(rows, key=lambda r: r["first_result_ms"])
    why = (f"{method} took {row['first_result_ms']:.0f} ms, {fastest['method']} "
           f"{fastest['first_result_ms']:.0f} ms: "
           + ("a forked worker is a copy of this process, ready in moments."
              if method == "fork" else
              "each worker starts a fresh interpreter and imports what the task needs"
              + (" (from the fork server, once it runs)." if method == "forkserver" else ".")))
    return graded(prediction, row["first_result_ms"], what="The first result in ms",
                  unit=" ms", why=why)


def pickle_ms_per_mib(prediction: Any, rows: Any) -> bool:
    """Notebook 07: what pickling a payload to a worker cost, per MiB, at the largest size."""
    pickled = [r for r in rows if r["method"] == "pickle" and "seconds" in r]
    top = max(pickled, key=lambda r: r["bytes"])
    measured = top["seconds"] * 1000 / (top["bytes"] / 2**20)
    why = (f"At {top['bytes'] / 2**20:g} MiB: the bytes are copied into the pickle, through "
           "the pipe, and out into a new object, each copy at memory speed, with the pipe's "
           "system calls on top.")
    return graded(prediction, measured, what="Milliseconds per MiB", unit=" ms/MiB", why=why)


def pool_run_seconds(prediction: Any, seconds: float, tasks: int, task_seconds: float,
                     workers: int, start_method: str) -> bool:
    """Notebook 05: how long step 1's pool took for the whole job, start and stop included."""
    ideal = tasks * task_seconds / workers
    rest = max(0.0, seconds - ideal)
    why = (f"The work alone, split perfectly, is {ideal:.2f} s; the rest ({rest:.2f} s) "
           f"is starting and stopping {workers} processes with **{start_method}**"
           + (", each a fresh interpreter importing the course's code"
              if start_method != "fork" else ", copies of this kernel made in moments")
           + ", and handing out the tasks.")
    return graded(prediction, seconds, what="The seconds", unit=" s", why=why)


def dask_over_loky(prediction: Any, speedups: Any) -> bool:
    """Notebook 09: Dask's speedup as a share of loky's (1.0: as fast; 0.8: 20 % slower)."""
    loky, dask = speedups["joblib loky"].median, speedups["joblib dask"].median
    why = (f"loky reached {loky:.2f}×, Dask {dask:.2f}× on this one machine: Dask adds a hop "
           "per batch (client → scheduler → worker and back), which pays off only when the "
           "workers are on other machines, or the tasks form a graph whose data Dask keeps "
           "where it is.")
    return graded(prediction, dask / loky, what="Dask's share of loky's speedup", unit="",
                  why=why)


def benchmark_speedup(prediction: Any, document: Any, workload: str, executor: str) -> bool:
    """Notebook 10: one scaling figure of the learner's own benchmark run."""
    from helpers.bench.schema import Summary

    summary = Summary.from_json(document.get("summary", {}))
    points = summary.speedup.get(workload, {}).get(executor, {})
    if not points:
        return report(False, f"This run has no {workload} figure for {executor}: run the "
                             "scaling part first.")
    top = max(points)
    measured = points[top].median
    gil_on = document.get("machine", {}).get("gil_enabled", True)
    if executor == "threads" and workload == "python":
        why = ("With the GIL on, threads run pure Python one at a time." if gil_on else
               "With the GIL off, threads ran pure Python in parallel.")
    elif executor == "threads":
        why = f"{workload} runs in C with the GIL released, so threads run it in parallel."
    else:
        why = (f"{top} processes, each with its own interpreter: the gap to {top}× is start-up, "
               "handing out tasks and anything else on the machine (the diagnosis below).")
    return graded(prediction, measured, what="The speedup", unit="×", why=why)


def numpy_speedup(prediction: Any, speedups: Any) -> bool:
    """Notebook 08b: NumPy on one CPU, as a speedup over the pure-Python loops."""
    numpy = speedups["NumPy, 1 process"].median
    processes = max((v.median for k, v in speedups.items()
                     if k.startswith("pure Python") and "processes" in k), default=1.0)
    why = (f"NumPy did the arithmetic in C: {numpy:.1f}× on one CPU, against {processes:.2f}× "
           "for the same Python loops on every CPU. Processes can at best divide the time by "
           "the CPUs; vectorising removes the interpreter from the inner loop.")
    return graded(prediction, numpy, what="The speedup", unit="×", why=why)


def unbounded_backlog(prediction: Any, unbounded: Any) -> bool:
    """Notebook 08: the most tasks unfinished at once when nothing bounds the producer."""
    per_task = unbounded["producer_done_after"] / unbounded["tasks"] * 1000
    job = unbounded["seconds"] / unbounded["tasks"] * 1000
    if per_task < job:
        why = (f"The producer made a task every {per_task:.2f} ms, and {unbounded['workers']} "
               f"workers finished one every {job:.1f} ms: `submit` never waits, so the backlog "
               f"grew to {unbounded['peak_unfinished']} of the {unbounded['tasks']} tasks, each "
               f"holding its {unbounded['payload_mib']:g} MiB payload in the parent until a "
               "worker took it.")
    else:
        why = (f"This time the producer was no faster than the workers (a task every "
               f"{per_task:.2f} ms, against one finished every {job:.1f} ms), so the backlog "
               f"stayed at {unbounded['peak_unfinished']} of the {unbounded['tasks']} tasks: "
               "`submit` never waits, and only a producer that outruns the pool builds one.")
    return graded(prediction, unbounded["peak_unfinished"], what="The backlog", unit=" tasks",
                  why=why)
