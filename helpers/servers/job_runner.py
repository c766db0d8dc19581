"""A job runner that stops gracefully on SIGTERM, and a controller that proves it (notebook 08).

    notebook ── run_and_interrupt() ──starts──> python -m helpers.servers.job_runner
        │  reads "done <job>" lines                │ its own queue of jobs (a stand-in for
        │                                           │ a real task queue), a WorkerPool with
        │  after k jobs: SIGTERM ─────────────────► │ one job per worker in flight
        │                                           │ on SIGTERM: take no new job, let the
        │                                           │ running ones finish, report the rest
        │  <── one JSON report line ────────────────┘ then shut the pool down and exit 0
        ▼
    counts: every job either done once or reported not started; none twice, none lost

Each job appends ``<job> <pid>`` to a log file from inside the worker (``O_APPEND``),
so the controller counts what really ran, not what the runner claims. The runner
also stops gracefully when its stdin closes (the notebook's kernel went away), so it
never outlives the kernel. Unix only: Windows has no SIGTERM to catch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Any

from helpers.core import paths
from helpers.pool import WorkerPool
from helpers.tasks import production


def run_jobs(jobs: int, seconds: float, workers: int, log_path: str) -> dict[str, Any]:
    """Run jobs ``0..jobs-1`` until done or told to stop; return the report."""
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_stop_when_stdin_closes, args=(stop, stopped_by),
                     daemon=True).start()

    queue = deque(range(jobs))
    completed: list[int] = []
    in_flight_at_stop: list[int] | None = None  # what was running when the stop was noticed
    running: dict[Any, int] = {}
    with WorkerPool(workers) as pool:
        print("ready", flush=True)
        while queue or running:
            while queue and len(running) < workers and not stop.is_set():
                job = queue.popleft()
                running[pool.submit(production.run_job, job, seconds, log_path)] = job
            if stop.is_set() and in_flight_at_stop is None:
                in_flight_at_stop = sorted(running.values())
            if not running:
                break
            done, _ = wait(list(running), timeout=0.05, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                future.result()
                completed.append(job)
                print(f"done {job}", flush=True)
            if stop.is_set() and not running:
                break
    return {"completed": completed, "not_started": list(queue),
            "in_flight_at_stop": in_flight_at_stop or [],
            "stopped_by": stopped_by[0] if stopped_by else None}


def _stop_when_stdin_closes(stop: threading.Event, stopped_by: list[str]) -> None:
    # os.read on the raw descriptor, not sys.stdin: a thread blocked inside sys.stdin
    # holds its lock, and a worker forked meanwhile deadlocks when multiprocessing
    # closes sys.stdin in the child.
    while os.read(0, 4096):  # b"" at EOF: whoever started us is gone
        pass
    if not stop.is_set():
        stopped_by.append("stdin closed")
        stop.set()


def run_and_interrupt(jobs: int = 30, seconds: float = 0.1, workers: int = 2,
                      interrupt_after: int = 6, timeout: float = 60.0) -> dict[str, Any]:
    """Start the runner, send SIGTERM after ``interrupt_after`` jobs, and count everything."""
    if sys.platform == "win32":
        raise RuntimeError("SIGTERM cannot be caught on Windows (terminate() is immediate): "
                           "this experiment needs Linux or macOS.")
    if not 1 <= interrupt_after < jobs:
        raise ValueError(f"interrupt_after must be between 1 and jobs - 1 ({jobs - 1}), "
                         f"got {interrupt_after!r}")
    with tempfile.TemporaryDirectory(prefix="course-jobs-") as folder:
        log_path = str(Path(folder) / "executions.log")
        command = [sys.executable, "-m", "helpers.servers.job_runner", "--jobs", str(jobs),
                   "--seconds", str(seconds), "--workers", str(workers), "--log", log_path]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, cwd=str(paths.REPO_ROOT))
        try:
            done_before_signal = _read_until_done(process, interrupt_after, timeout)
            signalled = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            rest = process.stdout.read()  # until the runner exits (stdin stays open)
            process.wait(timeout=timeout)
            exit_seconds = time.perf_counter() - signalled
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdin.close()
            process.stdout.close()
        report = json.loads(rest.strip().splitlines()[-1])
        executions = Counter(int(line.split()[0])
                             for line in Path(log_path).read_text().splitlines())
    return count(report, executions, jobs) | {
        "exit_code": process.returncode, "seconds_from_sigterm_to_exit": exit_seconds,
        "done_before_sigterm": done_before_signal}


def _read_until_done(process: subprocess.Popen, wanted: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    done = 0
    while done < wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the runner finished only {done} jobs in {timeout} s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the runner exited early (code {process.wait()})")
        if line.startswith("done "):
            done += 1
    return done


def count(report: dict[str, Any], executions: Counter, jobs: int) -> dict[str, Any]:
    """Check the runner's report against what the workers logged."""
    completed, not_started = set(report["completed"]), set(report["not_started"])
    return {
        "jobs": jobs,
        "completed": len(completed),
        "not started (reported back)": len(not_started),
        "in flight at SIGTERM": len(report["in_flight_at_stop"]),
        "stopped by": report["stopped_by"],
        "every job accounted for": completed | not_started == set(range(jobs)),
        "no job both done and reported": not completed & not_started,
        "each done job ran exactly once": all(executions[j] == 1 for j in completed),
        "no unstarted job ran": not any(executions[j] for j in not_started),
        "in-flight jobs finished": set(report["in_flight_at_stop"]) <= completed,
        "jobs that ran twice": sorted(j for j, n in executions.items() if n > 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.servers.job_runner",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=0.1, help="CPU time per job")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log", required=True, help="file the workers append to")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.workers < 1 or not 0 < args.seconds <= 10:
        parser.error("--jobs and --workers must be positive, --seconds in (0, 10]")
    print(json.dumps(run_jobs(args.jobs, args.seconds, args.workers, args.log)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
