"""How many workers? What a kernel in a container may really use (notebook 08).

    this kernel ──starts──> python -m helpers.experiments.sizing --cpus 0  (a "smaller machine")
                               │ os.sched_setaffinity(0, {0}): only CPU 0 from now on
                               │ reports os.cpu_count(), the affinity, the machine card
                               │ times one CPU-bound job with 1, cpu_count() and 2×cpu_count()
                               ▼                                      WorkerPool workers
                            one JSON line on stdout ──> rows for the notebook

``os.cpu_count()`` counts the CPUs the machine has, not the ones this process may
use. A CPU affinity mask (``taskset``, ``docker run --cpuset-cpus``) and a cgroup
quota (``docker run --cpus``, a Kubernetes CPU *limit*) both shrink what is usable;
``helpers.core.machine.usable_cpus`` reads both. Affinity can be set on a running process,
so the notebook can show a smaller machine on this one; a quota cannot be set without
root and cgroups, so it is explained, and read if this kernel already has one.
Linux only (``os.sched_setaffinity``); elsewhere the functions say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from helpers.core import config, machine, paths, workloads
from helpers.pool import WorkerPool

#: One job of CPU-bound tasks (seconds of work in total, per task).
JOB_SECONDS = {"full": 0.6, "quick": 0.3}
TASK_SECONDS = 0.02


def can_restrict() -> bool:
    """True where a process can limit itself to some CPUs (Linux)."""
    return hasattr(os, "sched_setaffinity")


def smaller_machine(cpus: set[int] | None = None, measure_job: bool = True,
                    timeout: float = 60.0) -> dict[str, Any]:
    """Run the probe in a child process limited to ``cpus`` (default: the first CPU).

    Returns what the child saw: ``cpu_count``, ``affinity``, ``usable`` and, with
    ``measure_job``, one row per worker count (``workers``, ``seconds``,
    ``task_wall_ms``: how long each 20 ms task took from start to finish).
    """
    if not can_restrict():
        raise RuntimeError("os.sched_setaffinity is Linux-only: this platform cannot restrict "
                           "a process to some CPUs (macOS has no such call; Windows uses "
                           "job objects). The notebook explains the idea instead.")
    allowed = sorted(os.sched_getaffinity(0))
    cpus = set(cpus) if cpus is not None else {allowed[0]}
    if not cpus or not cpus <= set(allowed):
        raise ValueError(f"cpus must be a non-empty subset of this process's CPUs {allowed}, "
                         f"got {sorted(cpus) if cpus else cpus!r}")
    command = [sys.executable, "-m", "helpers.experiments.sizing", "--cpus",
               ",".join(str(c) for c in sorted(cpus))]
    if measure_job:
        command.append("--measure")
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                               cwd=paths.REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if completed.returncode != 0:
        raise RuntimeError(f"the probe failed (exit {completed.returncode}):\n"
                           f"{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cpu_count_override(version: tuple[int, int] | None = None,
                       xoptions: Mapping[str, Any] | None = None,
                       environ: Mapping[str, str] | None = None) -> str | None:
    """What overrides Python's CPU counts in this process (3.13+), or None.

    ``-X cpu_count=N`` (kept in ``sys._xoptions``) wins over ``PYTHON_CPU_COUNT``; Pythons
    before 3.13 ignore both, and so does this function for them. The arguments default
    to this process's own (tests pass others).
    """
    if (version or sys.version_info[:2]) < (3, 13):
        return None
    option = (sys._xoptions if xoptions is None else xoptions).get("cpu_count")
    if isinstance(option, str) and option != "default":
        return f"-X cpu_count={option}"
    variable = (os.environ if environ is None else environ).get("PYTHON_CPU_COUNT", "").strip()
    if variable and variable != "default":
        return f"PYTHON_CPU_COUNT={variable}"
    return None


def default_process_workers(version: tuple[int, int] | None = None,
                            platform: str | None = None) -> int:
    """How many workers ``ProcessPoolExecutor()`` starts when given no ``max_workers``.

    The documented rule: ``os.process_cpu_count()`` from Python 3.13, ``os.cpu_count()``
    before; at most 61 on Windows.
    """
    version = version or sys.version_info[:2]
    counter = getattr(os, "process_cpu_count", None) if version >= (3, 13) else None
    workers = (counter() if counter else os.cpu_count()) or 1
    return min(workers, 61) if (platform or sys.platform) == "win32" else workers


def cpu_count_record() -> dict[str, Any]:
    """Every answer to "how many CPUs?" this process gets, with the Python that gave them.

    Plain data for :func:`helpers.view.explain_production.explain_cpu_counts`:
    ``python`` (major, minor), ``platform``, ``cpu_count``, ``process_cpu_count``
    (None before 3.13), ``affinity``, ``quota``, ``usable``, ``override`` and
    ``default_workers`` (what ``ProcessPoolExecutor()`` starts).
    """
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    return {
        "python": list(sys.version_info[:2]),
        "platform": sys.platform,
        "cpu_count": os.cpu_count(),
        "process_cpu_count": process_cpu_count() if process_cpu_count else None,
        "affinity": machine.affinity_cpus(),
        "quota": machine.cgroup_cpu_quota(),
        "usable": machine.usable_cpus(),
        "override": cpu_count_override(),
        "default_workers": default_process_workers(),
    }


def what_this_process_sees(record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The answers to "how many CPUs?", as this process sees them (a table's rows)."""
    record = record or cpu_count_record()
    return {
        "os.cpu_count()": record["cpu_count"],
        "os.process_cpu_count()": (record["process_cpu_count"]
                                   if record["process_cpu_count"] is not None else "(3.13+)"),
        "affinity (sched_getaffinity)": record["affinity"],
        "cgroup quota (CPUs)": record["quota"],
        "ProcessPoolExecutor() default workers": record["default_workers"],
        "usable (the course's answer)": record["usable"],
    }


def time_job(workers: int, job_seconds: float, units: int | None = None) -> dict[str, Any]:
    """Time one fixed CPU-bound job on a ``WorkerPool`` of ``workers`` processes.

    ``units``: the work per task (default: calibrated now for ``TASK_SECONDS``). Pass the
    same value for every worker count, so that each row times the same job.
    """
    if units is None:
        units = workloads.calibrate("python", budget_seconds=0.2).units_for(TASK_SECONDS)
    tasks = max(workers, round(job_seconds / TASK_SECONDS))
    with WorkerPool(workers) as pool:
        for future in [pool.submit(workloads.sleep_io, 10) for _ in range(workers)]:
            future.result()  # every worker started before the clock starts
        pool.trace(clear=True)
        start = time.perf_counter()
        for future in [pool.submit(workloads.python_loop, units) for _ in range(tasks)]:
            future.result()
        seconds = time.perf_counter() - start
        wall = sorted(r.run_seconds for r in pool.trace())
    return {"workers": workers, "tasks": tasks, "seconds": seconds,
            "task_wall_ms": 1000 * wall[len(wall) // 2]}


def probe(measure_job: bool) -> dict[str, Any]:
    """What this (already restricted) process sees, and optionally the timed job."""
    record = cpu_count_record()
    result: dict[str, Any] = {"seen": what_this_process_sees(record), "record": record,
                              "cpu_count": os.cpu_count(), "usable": machine.usable_cpus(),
                              "start_method": config.start_method(), "rows": []}
    if measure_job:
        job = JOB_SECONDS[config.mode()]
        counts = sorted({1, os.cpu_count() or 1, 2 * (os.cpu_count() or 1)})
        # Calibrated once, before any pool starts: every row runs the same tasks.
        units = workloads.calibrate("python", budget_seconds=0.2).units_for(TASK_SECONDS)
        result["rows"] = [time_job(workers, job, units) for workers in counts]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.experiments.sizing",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", required=True, help="CPU numbers to keep, e.g. 0 or 0,1")
    parser.add_argument("--measure", action="store_true", help="also time the job")
    args = parser.parse_args(argv)
    cpus = {int(c) for c in args.cpus.split(",") if c.strip()}
    os.sched_setaffinity(0, cpus)  # from here on, this process (and its children) see less
    print(json.dumps(probe(args.measure)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
