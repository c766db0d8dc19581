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
the figures are in :mod:`helpers.view.plots`. Every server is stopped when the function
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

from helpers.core import config, machine
from helpers.servers.asyncio_server import AsyncAppServer
from helpers.servers.gunicorn_run import GunicornServer, available, memory_per_worker
from helpers.servers.loadgen import LoadResult, load, per_interval, start_load
from helpers.servers.prefork import Event, PreforkServer

ROUTES = ("cpu", "io")
SERVERS = ("asyncio, CPU inline", "asyncio + WorkerPool", "PreforkServer", "gunicorn")


def route_url(base: str, route: str, ms: float) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    if not 0 <= ms <= 2000:
        raise ValueError(f"ms must be 0 to 2000, got {ms!r}")
    return f"{base}/{route}?ms={ms:g}"


def row(server: str, workers: int, route: str, result: LoadResult) -> dict[str, Any]:
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
        rows.append(row("PreforkServer", workers, route, result))
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
        rows.append(row(name, 1 if name == "asyncio, CPU inline" else workers, "cpu", result))
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


def _under_load(what: str, disrupt: Any, workers: int | None, ms: float, concurrency: int,
                seconds: float | None) -> DisruptionRun:
    """Run a load on a PreforkServer and call ``disrupt(server)`` a third of the way in."""
    workers = workers or max(2, machine.usable_cpus())
    seconds = seconds or config.budget(3.0, 2.0)
    with PreforkServer(workers=workers) as server:
        before = server.pids
        started = server.elapsed()
        run = start_load(route_url(server.url, "cpu", ms), requests=100_000,
                         concurrency=concurrency, max_seconds=seconds)
        time.sleep(seconds / 3)
        at = server.elapsed() - started
        disrupt(server)
        result = run.result()
        time.sleep(0.2)  # let the supervisor finish a replacement it started at the end
        return DisruptionRun(what, at, result, _shift(server.events, started), before,
                             server.pids)


def kill_during_load(workers: int | None = None, ms: float = 5, concurrency: int = 8,
                     seconds: float | None = None) -> DisruptionRun:
    """SIGKILL one worker a third of the way through a load run; the supervisor replaces it."""
    return _under_load("SIGKILL one worker",
                       lambda server: os.kill(server.pids[0], signal.SIGKILL),
                       workers, ms, concurrency, seconds)


def rolling_restart_under_load(workers: int | None = None, ms: float = 5, concurrency: int = 8,
                               seconds: float | None = None) -> DisruptionRun:
    """Replace every worker, one by one, in the middle of a load run."""
    return _under_load("rolling restart", lambda server: server.rolling_restart(),
                       workers, ms, concurrency, seconds)


def _touch_every_worker(url: str, pids: list[int], tries: int = 400,
                        path: str = "/gc") -> set[int]:
    """Send ``path`` until every worker has answered at least once (concurrent requests)."""
    seen: set[int] = set()

    def one(_: int) -> int:
        import json

        with urllib.request.urlopen(url + path, timeout=10) as answer:
            return int(json.loads(answer.read())["pid"])

    with ThreadPoolExecutor(max_workers=2 * len(pids)) as threads:
        for _ in range(tries // (2 * len(pids))):
            seen.update(threads.map(one, range(2 * len(pids))))
            if seen >= set(pids):
                break
    return seen


#: When memory is measured, and the request every worker answers just before (if any).
MOMENTS = (("after start", None), ("after a full GC", "/gc"),
           ("after GC, then reading every row", "/read"))


def copy_on_write(workers: int = 2, rows: int = 300_000) -> list[dict[str, Any]]:
    """Memory per gunicorn worker with a big table: no preload, --preload, --preload + freeze.

    Measured right after start, after a full garbage collection in every worker, and after
    each worker has then read every row of the table (``MOMENTS``).
    """
    reason = available()
    if reason is not None:
        raise RuntimeError(reason)
    table = []
    for label, preload, freeze in (("no --preload", False, False), ("--preload", True, False),
                                   ("--preload + gc.freeze()", True, True)):
        with GunicornServer("helpers.servers.demo_app_big:app", workers=workers, preload=preload,
                            gc_freeze=freeze, env={"COURSE_TABLE_ROWS": str(rows)}) as server:
            pids = server.pids
            for moment, path in MOMENTS:
                if path is not None:
                    _touch_every_worker(server.url, pids, path=path)
                for row in memory_per_worker(pids):
                    table.append({"config": label, "moment": moment, **row})
    return table


# --- explanations that quote the learner's own numbers (Markdown) ---


def explain_throughput(rows: list[dict[str, Any]], ms: float, usable: int) -> str:
    """What the throughput-by-workers plot shows."""
    lines = []
    for r in rows:
        ceiling = min(r["workers"], usable) * 1000 / ms
        lines.append(f"- **{r['workers']} worker(s):** {r['throughput_per_s']:.0f} requests/s "
                     f"({r['throughput_per_s'] / ceiling:.0%} of the {ceiling:.0f}/s that "
                     f"{min(r['workers'], usable)} CPU(s) allow), p99 latency "
                     f"{r['p99_ms']:.0f} ms.")
    more = [r for r in rows if r["workers"] > usable]
    if more:
        lines.append(f"- Past {usable} workers the throughput cannot grow: the extra workers "
                     "take turns on the same CPUs, and latency grows instead.")
    cpu = max(r["load_cpu_seconds"] / r["wall_seconds"] for r in rows)
    lines.append(f"- The load generator itself used up to {cpu:.0%} of one CPU: on a small "
                 "machine it competes with the server a little.")
    return "\n".join(lines)


def explain_servers(rows: list[dict[str, Any]]) -> str:
    """What the server comparison shows."""
    by = {r["server"]: r for r in rows}
    lines = [f"- **{name}:** {r['throughput_per_s']:.0f} requests/s, p50 {r['p50_ms']:.0f} ms, "
             f"p99 {r['p99_ms']:.0f} ms." for name, r in by.items()]
    inline, offload = by.get("asyncio, CPU inline"), by.get("asyncio + WorkerPool")
    if inline and offload:
        lines.append(f"- One event loop doing the CPU work itself serves "
                     f"{inline['throughput_per_s']:.0f}/s: one CPU's worth. Offloading the CPU "
                     f"route to {offload['workers']} processes gives "
                     f"{offload['throughput_per_s'] / inline['throughput_per_s']:.1f}× that, "
                     "and the loop stays free for everything else.")
    prefork, gunicorn = by.get("PreforkServer"), by.get("gunicorn")
    if prefork and gunicorn:
        lines.append(f"- The course's pre-fork server and gunicorn are within "
                     f"{abs(prefork['throughput_per_s'] / gunicorn['throughput_per_s'] - 1):.0%} "
                     "of each other: the same pattern (one socket, N processes, a supervisor).")
    return "\n".join(lines)


def explain_disruptions(kill: DisruptionRun, restart: DisruptionRun) -> str:
    """What the kill and rolling-restart timelines show."""
    died = [e for e in kill.events if e.kind == "died"]
    replaced = [e for e in kill.events if e.kind == "replaced"]
    gap = (f" and started its replacement {1000 * (replaced[0].seconds - died[0].seconds):.0f} "
           "ms later" if died and replaced else "")
    return "\n".join([
        f"- **SIGKILL:** {kill.result.failures} of {kill.result.requests} requests failed "
        f"({kill.result.failure_kinds() or 'none'}): the request the worker was running "
        f"when it was killed cannot be answered. The supervisor saw the death{gap}.",
        f"- **Rolling restart:** {restart.result.failures} of {restart.result.requests} requests "
        f"failed, while every worker was replaced ({restart.pids_before} → "
        f"{restart.pids_after}). Each new worker accepts from the shared socket before the old "
        "one finishes its request and leaves.",
    ])


def explain_memory(rows: list[dict[str, Any]]) -> str:
    """What the copy-on-write measurement shows."""
    def median_uss(config: str, moment: str) -> float:
        values = sorted(r["uss_mib"] for r in rows
                        if r["config"] == config and r["moment"] == moment)
        return values[len(values) // 2]

    plain = median_uss("no --preload", "after start")
    shared = median_uss("--preload", "after start")
    decayed = median_uss("--preload", "after a full GC")
    frozen = median_uss("--preload + gc.freeze()", "after a full GC")
    lines = [
        f"- Without `--preload` each worker builds its own table: {plain:.0f} MiB of its own.",
        f"- With `--preload` the master builds it once and the workers share its pages: "
        f"{shared:.0f} MiB of their own right after start.",
        f"- After one full garbage collection in each worker: {decayed:.0f} MiB of their own. "
        "The collector wrote to every object it visited, and each written page was copied.",
        f"- With `gc.freeze()` before the fork the collector leaves those objects alone: "
        f"{frozen:.0f} MiB after the same collection.",
    ]
    read = MOMENTS[2][0]
    if any(r["moment"] == read for r in rows):
        frozen_read = median_uss("--preload + gc.freeze()", read)
        lines.append(
            f"- But freezing only keeps the *collector* away. After each frozen worker read "
            f"every row once (a route that looks things up): {frozen_read:.0f} MiB of its own. "
            "Reading an object writes its reference count, so every page a worker reads is "
            "copied too; only immortal objects (None, small integers, interned strings: "
            "Python 3.12+) escape. `gc.freeze()` keeps shared what the workers do not touch: "
            "data they read on every request is better kept in bytes, arrays or shared "
            "memory (notebook 07) than in millions of small Python objects.")
    return "\n".join(lines)
