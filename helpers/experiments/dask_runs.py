"""Notebook 09's experiments: the same job on loky and on Dask, futures, scatter, task stream.

    one job: tasks of pure-Python work (helpers.core.workloads.python_loop)
        ├─ serial
        ├─ joblib Parallel, backend="loky"   (notebook 04's code)
        ├─ joblib Parallel, backend="dask"   (the same code, a Dask cluster underneath)
        └─ Dask futures: client.map + gather (Dask's own API)
    ──> rows (way, repeat, seconds) ──> speedups, plots

    payload to many tasks: sent with every task  vs  scattered once, then referenced
    task stream (Dask's record of every task) ──> TaskRecords ──> the course's timeline

Every function takes a :class:`helpers.servers.dask_cluster.DaskSession` and leaves it open;
the notebook closes it at the end.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from helpers.core import config, measure, workloads
from helpers.core.trace import TaskRecord
from helpers.experiments.pools import TimelineResult
from helpers.pool.joblib_backend import joblib_session
from helpers.servers.dask_cluster import DaskSession

WAYS = ("serial", "joblib loky", "joblib dask", "dask futures")


def _units_for(task_seconds: float) -> int:
    return workloads.calibrate("python", budget_seconds=0.2).units_for(task_seconds)


def same_job_every_way(session: DaskSession, task_seconds: float = 0.02,
                       tasks: int | None = None, repeats: int | None = None
                       ) -> list[dict[str, Any]]:
    """Time one job serially, on loky, on Dask through joblib, and with Dask futures."""
    from joblib import Parallel, delayed, parallel_config

    workers = session.workers
    tasks = tasks or int(config.budget(24, 12)) * workers
    repeats = repeats or (2 if config.quick_mode() else 3)
    units = _units_for(task_seconds)
    client = session.client

    def serial() -> None:
        for _ in range(tasks):
            workloads.python_loop(units)

    def loky() -> None:
        with parallel_config(backend="loky", n_jobs=workers):
            Parallel()(delayed(workloads.python_loop)(units) for _ in range(tasks))

    def dask() -> None:
        with parallel_config(backend="dask", n_jobs=workers):
            Parallel()(delayed(workloads.python_loop)(units) for _ in range(tasks))

    def futures() -> None:
        client.gather(client.map(workloads.python_loop, [units] * tasks, pure=False))

    ways = {"serial": serial, "joblib loky": loky, "joblib dask": dask,
            "dask futures": futures}
    rows = []
    with joblib_session():
        loky()  # start loky's workers before the clock (Dask's are already running)
        futures()
        for repeat, way in measure.interleaved(list(ways), repeats):
            seconds, _ = measure.timed(ways[way])
            rows.append({"way": way, "repeat": repeat, "seconds": seconds, "tasks": tasks,
                         "task_seconds": task_seconds, "workers": workers})
    return rows


def speedups(rows: list[dict[str, Any]]) -> dict[str, measure.Spread]:
    """Speedup over serial per way, per repeat (median and range), in the order of WAYS."""
    spreads = measure.speedups_over(rows, "serial")
    return {way: spreads[way] for way in WAYS if way in spreads}


def scatter_or_send(session: DaskSession, payload_mib: int = 16, tasks: int = 8,
                    repeats: int = 3) -> list[dict[str, Any]]:
    """``tasks`` tasks read the same payload: sent with each task, or scattered once."""
    client = session.client
    payload = b"d" * (payload_mib * 2**20)
    expected = zlib.crc32(payload)
    rows = []

    def send_each_time() -> bool:
        futures = [client.submit(zlib.crc32, payload, pure=False) for _ in range(tasks)]
        return all(v == expected for v in client.gather(futures))

    def scatter_once() -> bool:
        [remote] = client.scatter([payload], broadcast=True)
        futures = [client.submit(zlib.crc32, remote, pure=False) for _ in range(tasks)]
        ok = all(v == expected for v in client.gather(futures))
        client.cancel([remote])
        return ok

    ways = {"sent with every task": send_each_time, "scattered once": scatter_once}
    import warnings

    with warnings.catch_warnings():  # Dask warns about large arguments: that is the point
        warnings.simplefilter("ignore")
        for repeat, way in measure.interleaved(list(ways), repeats):
            seconds, correct = measure.timed(ways[way])
            rows.append({"way": way, "repeat": repeat, "seconds": seconds,
                         "payload_mib": payload_mib, "tasks": tasks, "correct": correct})
    return rows


def task_stream_timeline(session: DaskSession, task_seconds: float = 0.02,
                         tasks: int | None = None) -> TimelineResult:
    """Run a job with Dask futures and turn Dask's task stream into the course's records."""
    from dask.distributed import get_task_stream

    client = session.client
    tasks = tasks or 6 * session.workers
    units = _units_for(task_seconds)
    with get_task_stream(client) as stream:
        start = time.time()  # Dask's task stream uses wall-clock time
        client.gather(client.map(workloads.python_loop, [units] * tasks, pure=False))
        seconds = time.time() - start
    return TimelineResult("Dask futures (from its task stream)", "python", task_seconds, tasks,
                          1, session.workers, "dask", seconds,
                          task_stream_records(stream.data, start))


def task_stream_records(data: list[dict[str, Any]], start: float) -> list[TaskRecord]:
    """Dask's task-stream entries as TaskRecords, times relative to ``start``."""
    workers = sorted({entry["worker"] for entry in data})
    records = []
    for task_id, entry in enumerate(sorted(data, key=_compute_start)):
        for part in entry["startstops"]:
            if part["action"] == "compute":
                records.append(TaskRecord(task_id, f"worker {workers.index(entry['worker']) + 1}",
                                          0.0, part["start"] - start, part["stop"] - start))
    return records


def _compute_start(entry: dict[str, Any]) -> float:
    return min((p["start"] for p in entry["startstops"] if p["action"] == "compute"),
               default=0.0)


# --- a learner's joblib-on-Dask call (exercise 09.1) ---


def check_on_dask(run: Any, tasks: int = 8, workers: int = 2) -> tuple[list[Any], list[int]]:
    """Start a LocalCluster of its own (its client becomes the default one, which joblib's
    "dask" backend uses), call ``run(faults.worker_pid, range(tasks))``, and return what it
    returned with the cluster's worker pids. The cluster, and any loky workers the call
    started, are stopped whatever happens."""
    from helpers.servers import dask_cluster
    from helpers.tasks import faults

    # joblib_session: loky workers the learner's code may have started are stopped too
    with joblib_session(), dask_cluster.start(workers=workers, local=True) as session:
        pids = session.worker_pids()
        returned = run(faults.worker_pid, list(range(tasks)))
        return list(returned) if returned is not None else [], pids


# --- a learner's scatter (exercise 09.2) ---


@dataclass
class ScatterCheck:
    """What a learner's ``scatter_job(client, payload, tasks)`` did on a fresh cluster."""

    returned: list[Any] = field(default_factory=list)
    expected: int = 0
    scatters: int = 0  # calls of client.scatter
    big_arguments: int = 0  # submit calls that carried the payload itself


class _WatchedClient:
    """The real client, with ``scatter`` and ``submit`` counted on the way through."""

    def __init__(self, client: Any, check: ScatterCheck, big: int) -> None:
        self._client, self._check, self._big = client, check, big

    def scatter(self, *args: Any, **kwargs: Any) -> Any:
        self._check.scatters += 1
        return self._client.scatter(*args, **kwargs)

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, (bytes, bytearray)) and len(a) >= self._big for a in args):
            self._check.big_arguments += 1
        return self._client.submit(fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def check_scatter(scatter_job: Any, payload_mib: int = 4, tasks: int = 6,
                  workers: int = 2) -> ScatterCheck:
    """Call ``scatter_job(client, payload, tasks)`` beside a LocalCluster of its own, with a
    client that counts scatters and the submits that carry the payload. Closed at the end."""
    import warnings

    from helpers.servers import dask_cluster

    payload = b"d" * (payload_mib * 2**20)
    check = ScatterCheck(expected=zlib.crc32(payload))
    with dask_cluster.start(workers=workers, local=True) as session, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Dask warns about large arguments: the point here
        returned = scatter_job(_WatchedClient(session.client, check, 2**20), payload, tasks)
        check.returned = list(returned) if returned is not None else []
    return check
