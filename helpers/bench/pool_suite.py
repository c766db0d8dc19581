"""The pool benchmark: WorkerPool next to the standard library's pools and joblib.

Everything runs side by side in one process, on the same work functions (module
functions from ``helpers.core.workloads``), with 2 workers, each pool warmed up the same
way, repeats interleaved (A B C, B C A, …) and medians reported. Five experiments:

``tiny``          N tiny tasks, one ``submit`` per task (``imap(chunksize=1)`` for
                  multiprocessing.Pool): wall time and the parent's CPU time per task
``map``           ``WorkerPool.map(chunksize="auto")`` against joblib's auto-batching
                  (``Parallel(batch_size="auto")``, loky) over many tiny tasks
``coarse``        4 × workers pure-Python tasks of 0.1–0.25 s: speedup over running
                  them one after another in this process (pool start-up excluded)
``first-result``  start a pool, submit one task, get its result: time to first result
``latency``       one task at a time on a warm pool: the round trip

The targets (from the pool issue) are printed next to the figures; nothing here
asserts them: on a shared machine they are measurements, not tests.
"""

from __future__ import annotations

import statistics
from typing import Any, TextIO

from helpers.core import config, machine, measure, workloads
from helpers.core.measure import Measurement
from helpers.experiments.pool_overhead import (
    POOLS,
    WORKERS,
    Sizes,
    coarse,
    first_result,
    map_auto,
    tiny_and_latency,
)

# --- the whole suite ---


def run(quick: bool = False, methods: list[str] | None = None, repeats: int = 5,
        progress: TextIO | None = None) -> dict[str, Any]:
    """Run every experiment; return the result document (records + summary)."""
    methods = methods or [config.start_method()]
    sizes = Sizes.for_mode(quick)

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    say(f"pool benchmark: {'quick' if quick else 'full'} mode, start methods "
        f"{', '.join(methods)}, {repeats} interleaved repeats, {WORKERS} workers")
    calibration = workloads.calibrate("python", budget_seconds=0.5 if quick else 1.0)
    units = calibration.units_for(sizes.coarse_seconds)
    records: list[Measurement] = []
    for method in methods:
        records += tiny_and_latency(method, sizes, repeats, say)
        records += coarse(method, sizes, repeats, units, say)
        records += first_result(method, repeats, say)
    records += map_auto(methods, sizes, repeats, say)
    card = machine.machine_card()
    return measure.result_document(
        "pool-benchmark", records, card.as_dict(), mode="quick" if quick else "full",
        workers=WORKERS, sizes=sizes.__dict__, summary=summarize(records, methods),
    )


def _median(records: list[Measurement], experiment: str, executor: str,
            method: str | None) -> float:
    values = [r.seconds / r.tasks for r in records if r.experiment == experiment
              and r.executor == executor and r.start_method == method]
    return statistics.median(values)


def summarize(records: list[Measurement], methods: list[str]) -> dict[str, Any]:
    """Medians per task, ratios, and whether each target was met, per start method."""
    summary: dict[str, Any] = {}
    joblib_per_item = _median(records, "map-auto", "joblib (loky)", "loky")
    for method in methods:
        tiny = {name: _median(records, "tiny", name, method) for name in POOLS}
        cpu = {name: _median(records, "parent-cpu", name, method) for name in POOLS}
        latency = {name: _median(records, "latency", name, method) for name in POOLS}
        first = {name: _median(records, "first-result", name, method) for name in POOLS}
        serial = _median(records, "coarse", "serial", None)
        speedup = {name: serial / _median(records, "coarse", name, method) for name in POOLS}
        per_item = _median(records, "map-auto", "WorkerPool", method)
        best_stdlib_first = min(first["ProcessPoolExecutor"], first["multiprocessing.Pool"])
        summary[method] = {
            "tiny_seconds_per_task": tiny,
            "parent_cpu_seconds_per_task": cpu,
            "latency_seconds": latency,
            "first_result_seconds": first,
            "coarse_speedup": speedup,
            "map_auto_seconds_per_item": {"WorkerPool": per_item, "joblib": joblib_per_item},
            "targets": {
                "tiny_vs_ProcessPoolExecutor": _target(
                    tiny["WorkerPool"] / tiny["ProcessPoolExecutor"], "<=", 0.2),
                "tiny_vs_Pool.imap": _target(
                    tiny["WorkerPool"] / tiny["multiprocessing.Pool"], "<=", 1.0),
                "map_auto_microseconds_per_item": _target(per_item * 1e6, "<=", 1.0),
                "map_auto_vs_joblib": _target(per_item / joblib_per_item, "<=", 0.5),
                "coarse_speedup_per_worker": _target(speedup["WorkerPool"] / WORKERS,
                                                     ">=", 0.95),
                "first_result_vs_best_stdlib": _target(
                    first["WorkerPool"] / best_stdlib_first, "<=", 1.1),
            },
        }
    return summary


def _target(value: float, relation: str, limit: float) -> dict[str, Any]:
    met = value <= limit if relation == "<=" else value >= limit
    return {"value": value, "target": f"{relation} {limit}", "met": met}


def report(document: dict[str, Any]) -> str:
    """The summary as text: figures per pool, then each target with its ratio."""
    lines = [f"Pool benchmark ({document['mode']} mode) on {document['machine']['cpu_model']}, "
             f"{document['machine']['usable_cpus']} usable CPUs, Python "
             f"{document['machine']['python']}, {document['workers']} workers"]
    for method, s in document["summary"].items():
        lines.append(f"\nstart method: {method}")
        lines.append(f"  {'':24}{'WorkerPool':>14}{'ProcessPool':>14}{'mp.Pool':>14}")

        def row(label: str, values: dict[str, float], scale: float, unit: str) -> str:
            cells = "".join(f"{values[name] * scale:>12.1f}{unit}" for name in POOLS)
            return f"  {label:<24}{cells}"

        lines.append(row("tiny task, wall", s["tiny_seconds_per_task"], 1e6, "µs"))
        lines.append(row("tiny task, parent CPU", s["parent_cpu_seconds_per_task"], 1e6, "µs"))
        lines.append(row("one task, round trip", s["latency_seconds"], 1e6, "µs"))
        lines.append(row("time to first result", s["first_result_seconds"], 1e3, "ms"))
        lines.append(row("coarse speedup", s["coarse_speedup"], 1, "× "))
        m = s["map_auto_seconds_per_item"]
        lines.append(f"  map(chunksize='auto'): {m['WorkerPool'] * 1e6:.3f} µs/item; "
                     f"joblib auto-batching: {m['joblib'] * 1e6:.3f} µs/item")
        for name, t in s["targets"].items():
            verdict = "met" if t["met"] else "NOT met"
            lines.append(f"  target {name:<34} {t['value']:8.3f} (want {t['target']}): "
                         f"{verdict}")
    return "\n".join(lines)
