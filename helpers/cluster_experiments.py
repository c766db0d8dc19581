"""Notebook 06's experiments: servers under load, side by side.

::

    throughput_by_workers  PreforkServer(1..N workers) ──load(/cpu)──> requests/s
    compare_servers        asyncio inline | asyncio + WorkerPool | PreforkServer | gunicorn
                           ──the same load──> throughput and p50/p95/p99 latency
    kill_during_load       load running; SIGKILL one worker ──> dip, recovery, failures
    rolling_restart_under_load   load running; rolling_restart() ──> failures (should be 0)
    copy_on_write          gunicorn with a big table: no preload | --preload | + gc.freeze()
                           ──> memory per worker before and after a full collection

Each returns plain data (rows of dicts, or a LoadResult with the supervisor's events);
the figures are in :mod:`helpers.plots`. Every server is stopped when the function
returns, whatever happens.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import config, machine
from .cluster import Event, PreforkServer
from .gunicorn_run import GunicornServer, available, memory_per_worker
from .hybrid import AsyncAppServer
from .loadgen import LoadResult, load, per_interval, start_load

ROUTES = ("cpu", "io")
SERVERS = ("asyncio, CPU inline", "asyncio + WorkerPool", "PreforkServer", "gunicorn")


def route_url(base: str, route: str, ms: float) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    if not 0 <= ms <= 2000:
        raise ValueError(f"ms must be 0 to 2000, got {ms!r}")
    return f"{base}/{route}?ms={ms:g}"


def _row(server: str, workers: int, route: str, result: LoadResult) -> dict[str, Any]:
    """One line of a comparison: the load's summary, plus the slowest and fastest quarter
    second (whole intervals only), so plots can show how steady the throughput was."""
    starts, answered, _ = per_interval(result, 0.25)
    steady = [n / 0.25 for t, n in zip(starts, answered, strict=True)
              if t + 0.25 <= result.wall_seconds] or [result.throughput]
    return {"server": server, "workers": workers, "route": route, **result.summary(),
            "throughput_low": min(steady), "throughput_high": max(steady)}


def throughput_by_workers(counts: list[int] | None = None, route: str = "cpu", ms: float = 10,
                          concurrency: int | None = None, seconds: float | None = None,
                          start_method: str | None = None) -> list[dict[str, Any]]:
    """Requests per second of a PreforkServer with each worker count, on one route."""
    usable = machine.usable_cpus()
    counts = counts or sorted({1, usable, 2 * usable})
    seconds = seconds or config.budget(2.0, 1.0)
    rows = []
    for workers in counts:
        with PreforkServer(workers=workers, start_method=start_method) as server:
            result = load(route_url(server.url, route, ms), requests=100_000,
                          concurrency=concurrency or 2 * max(counts), max_seconds=seconds)
        rows.append(_row("PreforkServer", workers, route, result))
    return rows


def compare_servers(workers: int | None = None, ms: float = 10, concurrency: int = 8,
                    seconds: float | None = None, servers: tuple[str, ...] = SERVERS
                    ) -> list[dict[str, Any]]:
    """The same /cpu load on each kind of server, each with ``workers`` processes."""
    workers = workers or machine.usable_cpus()
    seconds = seconds or config.budget(2.0, 1.0)
    rows = []
    for name in servers:
        if name == "gunicorn" and available() is not None:
            continue
        server: Any = {
            "asyncio, CPU inline": lambda: AsyncAppServer("inline"),
            "asyncio + WorkerPool": lambda: AsyncAppServer("offload", workers=workers),
            "PreforkServer": lambda: PreforkServer(workers=workers),
            "gunicorn": lambda: GunicornServer(workers=workers),
        }[name]()
        with server:
            result = load(route_url(server.url, "cpu", ms), requests=100_000,
                          concurrency=concurrency, max_seconds=seconds)
        rows.append(_row(name, 1 if name == "asyncio, CPU inline" else workers, "cpu", result))
    return rows


@dataclass
class DisruptionRun:
    """A load run during which something happened to the server."""

    what: str
    at_seconds: float  # when it happened, seconds after the load started
    result: LoadResult
    events: list[Event] = field(default_factory=list)  # times relative to the load's start
    pids_before: list[int] = field(default_factory=list)
    pids_after: list[int] = field(default_factory=list)


def _shift(events: list[Event], offset: float) -> list[Event]:
    return [Event(e.seconds - offset, e.kind, e.slot, e.pid, e.detail) for e in events]


def kill_during_load(workers: int | None = None, ms: float = 5, concurrency: int = 8,
                     seconds: float | None = None) -> DisruptionRun:
    """SIGKILL one worker a third of the way through a load run; the supervisor replaces it."""
    workers = workers or max(2, machine.usable_cpus())
    seconds = seconds or config.budget(3.0, 2.0)
    with PreforkServer(workers=workers) as server:
        before = server.pids
        started = server.elapsed()
        run = start_load(route_url(server.url, "cpu", ms), requests=100_000,
                         concurrency=concurrency, max_seconds=seconds)
        time.sleep(seconds / 3)
        os.kill(before[0], signal.SIGKILL)
        at = server.elapsed() - started
        result = run.result()
        time.sleep(0.2)
        return DisruptionRun("SIGKILL one worker", at, result,
                             _shift(server.events, started), before, server.pids)


def rolling_restart_under_load(workers: int | None = None, ms: float = 5, concurrency: int = 8,
                               seconds: float | None = None) -> DisruptionRun:
    """Replace every worker, one by one, in the middle of a load run."""
    workers = workers or max(2, machine.usable_cpus())
    seconds = seconds or config.budget(3.0, 2.0)
    with PreforkServer(workers=workers) as server:
        before = server.pids
        started = server.elapsed()
        run = start_load(route_url(server.url, "cpu", ms), requests=100_000,
                         concurrency=concurrency, max_seconds=seconds)
        time.sleep(seconds / 3)
        at = server.elapsed() - started
        after = server.rolling_restart()
        result = run.result()
        return DisruptionRun("rolling restart", at, result, _shift(server.events, started),
                             before, after)


def _touch_every_worker(url: str, pids: list[int], tries: int = 400) -> set[int]:
    """Send /gc until every worker has answered at least once (concurrent requests)."""
    seen: set[int] = set()

    def one(_: int) -> int:
        import json

        with urllib.request.urlopen(url + "/gc", timeout=10) as answer:
            return int(json.loads(answer.read())["pid"])

    with ThreadPoolExecutor(max_workers=2 * len(pids)) as threads:
        for _ in range(tries // (2 * len(pids))):
            seen.update(threads.map(one, range(2 * len(pids))))
            if seen >= set(pids):
                break
    return seen


def copy_on_write(workers: int = 2, rows: int = 300_000) -> list[dict[str, Any]]:
    """Memory per gunicorn worker with a big table: no preload, --preload, --preload + freeze.

    Measured right after start and after a full garbage collection in every worker.
    """
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    table = []
    for label, preload, freeze in (("no --preload", False, False), ("--preload", True, False),
                                   ("--preload + gc.freeze()", True, True)):
        with GunicornServer("helpers.demo_app_big:app", workers=workers, preload=preload,
                            gc_freeze=freeze, env={"COURSE_TABLE_ROWS": str(rows)}) as server:
            pids = server.pids
            for moment in ("after start", "after a full GC"):
                if moment == "after a full GC":
                    _touch_every_worker(server.url, pids)
                for row in memory_per_worker(pids):
                    table.append({"config": label, "moment": moment, **row})
    return table
