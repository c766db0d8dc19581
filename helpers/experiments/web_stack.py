"""Notebook 06b's experiments: CPU work in a FastAPI app, its workers, gunicorn's knobs,
Node's cluster, and open- vs closed-loop load. Each returns plain records (dicts, or
dataclasses with ``to_dict()`` for gunicorn's graceful stop and HUP reload); each
``explain_*`` turns the learner's records into Markdown that is true of them.

Every server binds 127.0.0.1 on a free port, exits with the kernel, and is stopped
before the function returns; every load is bounded in requests and in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers.core import config, machine, paths, validate
from helpers.servers import demo_app, loadgen, prefork, web_run
from helpers.servers.loadgen import LoadResult

SCHEMA_VERSION = 1
NODE_SCRIPT = paths.REPO_ROOT / "helpers" / "servers" / "node_cluster.js"
MIN_NODE = 18
CONVOY_MODES = ("cpu_async", "cpu_sync", "cpu_offload")
MODE_LABELS = {"cpu_async": "async def (on the loop)", "cpu_sync": "def (thread pool)",
               "cpu_offload": "offload (process pool)"}


def seconds_per_run() -> float:
    """How long each load run lasts: shorter in quick mode."""
    return config.budget(3.0, 1.0)


def _spread(result: LoadResult, interval: float = 0.25) -> dict[str, float]:
    """Throughput per ``interval`` window: median, lowest and highest (requests/s)."""
    _, answered, _ = loadgen.per_interval(result, interval)
    rates = [n / interval for n in answered[:-1]] or [result.throughput]  # last: partial
    return {"throughput_median": statistics.median(rates), "throughput_low": min(rates),
            "throughput_high": max(rates)}


def _record(experiment: str, label: str, result: LoadResult, **extra: Any) -> dict[str, Any]:
    kinds = result.failure_kinds()
    return {"schema": SCHEMA_VERSION, "experiment": experiment, "label": label,
            "machine_id": machine.machine_id(), "mode": config.mode(),
            "start_method": config.start_method(), "gil_enabled": machine.gil_enabled(),
            "usable_cpus": machine.usable_cpus(), **result.summary(), **_spread(result),
            "http_503": kinds.get("HTTP 503", 0),
            "other_errors": sum(n for k, n in kinds.items() if k != "HTTP 503"),
            "failure_kinds": kinds, "latencies_ms": [lat * 1000 for lat, s in zip(
                result.latencies, result.statuses, strict=True) if 200 <= s < 300],
            **extra}


# --- 1. the convoy ---


def convoy(ms: float = 20, cpu_clients: int = 4, seconds: float | None = None,
           pool_workers: int | None = None) -> list[dict[str, Any]]:
    """The same CPU route as ``async def``, ``def`` and offloaded, each under
    ``cpu_clients`` clients, while one more client keeps asking ``/cheap``.

    One record per mode and side: ``side="cpu"`` (throughput of the CPU route) and
    ``side="cheap"`` (latency of the cheap route served beside it)."""
    seconds = seconds or seconds_per_run()
    workers = pool_workers or machine.usable_cpus()
    env = {"WEB_POOL_WORKERS": str(workers), "WEB_MAX_IN_FLIGHT": "1000"}
    rows = []
    with web_run.UvicornServer(env=env) as server:
        loadgen.load(server.url + f"/cpu_offload?ms={ms}", requests=2 * workers,
                     concurrency=workers, max_seconds=5)  # start the pool's workers
        for mode in CONVOY_MODES:
            cpu = loadgen.start_load(server.url + f"/{mode}?ms={ms}", requests=100_000,
                                     concurrency=cpu_clients, max_seconds=seconds)
            cheap = loadgen.start_load(server.url + "/cheap", requests=100_000,
                                       concurrency=1, max_seconds=seconds)
            cpu_result, cheap_result = cpu.result(), cheap.result()
            common = {"route": mode, "ms": ms, "cpu_clients": cpu_clients,
                      "pool_workers": workers}
            rows.append(_record("convoy", MODE_LABELS[mode], cpu_result, side="cpu", **common))
            rows.append(_record("convoy", MODE_LABELS[mode], cheap_result, side="cheap",
                                **common))
    return rows


def _pick(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def explain_convoy(rows: list[dict[str, Any]]) -> str:
    """What the learner's convoy run shows, with their numbers, GIL on or off."""
    cpu = {m: _pick(rows, route=m, side="cpu") for m in CONVOY_MODES}
    cheap = {m: _pick(rows, route=m, side="cheap") for m in CONVOY_MODES}
    ms, gil = rows[0]["ms"], rows[0]["gil_enabled"]
    workers = rows[0]["pool_workers"]
    lines = [f"Each CPU request needs {ms:g} ms of CPU; {rows[0]['cpu_clients']} clients sent "
             "them back to back while one more client asked `/cheap` (which needs almost "
             "nothing)."]
    a, s, o = (cheap[m]["p50_ms"] for m in CONVOY_MODES)
    a99, s99, o99 = (cheap[m]["p99_ms"] for m in CONVOY_MODES)
    lines.append(f"- **`async def`**: the work runs *on* the event loop, so `/cheap` waited "
                 f"for it: median {a:.0f} ms, p99 {a99:.0f} ms, for a route that needs well "
                 f"under one. {cpu['cpu_async']['throughput_per_s']:.0f} CPU requests/s: one "
                 "core at most.")
    if gil:
        lines.append(f"- **`def`**: Starlette ran it in its thread pool, so the loop was free "
                     f"to *accept* `/cheap`, but this kernel has the GIL: the loop thread "
                     f"must win the lock back from the busy threads (every 5 ms switch "
                     f"interval), so `/cheap` took median {s:.0f} ms, p99 {s99:.0f} ms "
                     f"(the convoy), and throughput stayed at "
                     f"{cpu['cpu_sync']['throughput_per_s']:.0f} requests/s: threads do not "
                     "add cores for pure Python.")
    else:
        lines.append(f"- **`def`**: Starlette ran it in its thread pool and this kernel runs "
                     f"with the GIL **off**, so the threads used several cores "
                     f"({cpu['cpu_sync']['throughput_per_s']:.0f} requests/s) and `/cheap` "
                     f"took median {s:.0f} ms, p99 {s99:.0f} ms. With the GIL on (the usual "
                     "build) this row would look like the `async def` one in throughput.")
    lines.append(f"- **offload**: a process pool of {workers} owned by the app did the work, "
                 f"and the loop only awaited it: `/cheap` median {o:.1f} ms, p99 {o99:.0f} ms, "
                 f"and {cpu['cpu_offload']['throughput_per_s']:.0f} CPU requests/s "
                 f"(ceiling {workers * 1000 / ms:.0f} with {workers} processes).")
    if cpu["cpu_offload"]["throughput_per_s"] <= 1.1 * cpu["cpu_async"]["throughput_per_s"]:
        lines.append(f"Offloading did not raise throughput in this run: with "
                     f"{rows[0]['usable_cpus']} usable CPU(s) shared by the server, its pool, "
                     "and the load generator (whose own CPU use is in the records), there "
                     "was no idle core to gain, and each request paid for the trip to the "
                     "pool. What offloading always buys is the cheap route's latency.")
    lines.append("The bars' whiskers are the lowest and highest 0.25 s windows, the boxes the "
                 "spread of every cheap request; on a 2-core machine the load generator "
                 "shares the CPUs, so compare the rows, not the absolute numbers.")
    return "\n".join(lines)


# --- 1b. shedding ---


def shedding(ms: float = 20, seconds: float | None = None, pool_workers: int | None = None
             ) -> list[dict[str, Any]]:
    """Open-loop load on ``/cpu_offload`` at half and at twice the pool's capacity,
    against an app that sheds beyond ``max_in_flight`` = pool size and one that queues."""
    seconds = seconds or seconds_per_run()
    workers = pool_workers or machine.usable_cpus()
    capacity = workers * 1000 / ms
    rows = []
    for shed in (True, False):
        env = {"WEB_POOL_WORKERS": str(workers), "WEB_MAX_IN_FLIGHT": str(workers),
               "WEB_SHED": "1" if shed else "0"}
        with web_run.UvicornServer(env=env) as server:
            url = server.url + f"/cpu_offload?ms={ms}"
            loadgen.load(url, requests=workers, concurrency=workers, max_seconds=5)  # warm
            for level, factor in (("below", 0.5), ("above", 2.0)):
                result = loadgen.load(url, requests=100_000, max_seconds=seconds,
                                      rate=factor * capacity)
                rows.append(_record("shedding", f"{'shed' if shed else 'queue'}, {level}",
                                    result, shed=shed, level=level, rate=factor * capacity,
                                    capacity=capacity, ms=ms, pool_workers=workers))
    return rows


def explain_shedding(rows: list[dict[str, Any]]) -> str:
    cap = rows[0]["capacity"]
    parts = [f"The pool can finish about {cap:.0f} requests/s ({rows[0]['pool_workers']} "
             f"processes × 1000 / {rows[0]['ms']:g} ms). Requests arrived on a fixed "
             "schedule (open loop) at half and at twice that."]
    for row in rows:
        parts.append(f"- **{row['label']}**: {row['ok']} answered, p50 {row['p50_ms']:.0f} ms, "
                     f"p99 {row['p99_ms']:.0f} ms; {row['http_503']} answered 503 at once; "
                     f"{row['other_errors']} other failures.")
    shed, queue = _pick(rows, shed=True, level="above"), _pick(rows, shed=False, level="above")
    if shed["http_503"] and queue["p99_ms"] > shed["p99_ms"]:
        parts.append(f"Above saturation the queueing app kept every request and made all of "
                     f"them wait (p99 {queue['p99_ms']:.0f} ms and growing for as long as the "
                     f"overload lasts); the shedding app said *no* to {shed['http_503']} "
                     f"immediately, with `Retry-After`, and the ones it accepted stayed fast "
                     f"(p99 {shed['p99_ms']:.0f} ms). A client or load balancer can retry "
                     "a 503 elsewhere; it cannot get back the seconds spent in a queue.")
    else:
        parts.append("This run did not separate the two apps clearly (the machine may have "
                     "been busy, or the load too short): run it again, or in full mode.")
    return "\n".join(parts)


# --- 2. workers ---


def compare_workers(ms: float = 10, workers: int | None = None, seconds: float | None = None,
                    concurrency: int | None = None) -> list[dict[str, Any]]:
    """The same CPU route under ``uvicorn --workers N``, gunicorn with
    ``-k uvicorn_worker.UvicornWorker`` and notebook 06's PreforkServer (WSGI)."""
    workers = workers or web_run.default_workers()
    seconds = seconds or seconds_per_run()
    concurrency = concurrency or 2 * workers
    servers: list[tuple[str, Any, str]] = [
        (f"uvicorn --workers {workers}", lambda: web_run.UvicornServer(workers=workers),
         "/cpu_async"),
    ]
    if web_run.gunicorn_available() is None:
        servers.append((f"gunicorn -k uvicorn_worker.UvicornWorker -w {workers}",
                        lambda: web_run.GunicornServer(workers=workers), "/cpu_async"))
    servers.append((f"PreforkServer({workers}) (notebook 06)",
                    lambda: prefork.PreforkServer(workers=workers), "/cpu"))
    rows = []
    for label, make, route in servers:
        with make() as server:
            result = loadgen.load(server.url + f"{route}?ms={ms}", requests=100_000,
                                  concurrency=concurrency, max_seconds=seconds)
        rows.append(_record("workers", label, result, server=label, workers=workers, ms=ms,
                            concurrency=concurrency))
    return rows


def explain_workers(rows: list[dict[str, Any]]) -> str:
    workers, ms = rows[0]["workers"], rows[0]["ms"]
    ceiling = min(workers, rows[0]["usable_cpus"]) * 1000 / ms
    parts = [f"Each server ran {workers} worker processes (the usable CPUs, as "
             f"`WEB_CONCURRENCY` would say) and got {rows[0]['concurrency']} clients asking "
             f"for {ms:g} ms of CPU; the ceiling is about {ceiling:.0f} requests/s."]
    for row in rows:
        parts.append(f"- {row['label']}: **{row['throughput_per_s']:.0f} requests/s**, p99 "
                     f"{row['p99_ms']:.0f} ms, {row['workers_seen']} processes answered.")
    best = max(r["throughput_per_s"] for r in rows)
    worst = min(r["throughput_per_s"] for r in rows)
    if worst > 0.7 * best:
        parts.append("They are within about 30 % of one another: for CPU-bound routes the "
                     "framework hardly matters; the number of processes (and CPUs) does.")
    else:
        parts.append("One server fell well behind: look at its p99 and at how many "
                     "processes answered (a worker still starting, or the load generator "
                     "taking a CPU).")
    return "\n".join(parts)


# --- 3. gunicorn's timeout kill and recycling ---


def _get(url: str, timeout: float = 15) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()[:200], time.perf_counter() - start
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()[:200], time.perf_counter() - start
    except OSError as error:
        return 0, f"{type(error).__name__}: {error}", time.perf_counter() - start


def timeout_kill(ms: float = 3000, timeout: int = 1) -> dict[str, Any]:
    """A sync gunicorn worker serving a ``ms`` CPU request with ``--timeout`` below it
    (killed: "WORKER TIMEOUT"), then the same request with ``--timeout`` above it."""
    validate.number("ms", ms, 0, demo_app.MAX_MS)
    validate.whole_number("timeout", timeout, 1, 60)
    record: dict[str, Any] = {"schema": SCHEMA_VERSION, "experiment": "timeout", "ms": ms,
                              "timeout": timeout, "mode": config.mode()}
    with web_run.GunicornServer("helpers.servers.demo_app:app", workers=1,
                                worker_class="sync", timeout=timeout) as server:
        before = server.pids
        record["killed_status"], record["killed_body"], record["killed_seconds"] = _get(
            server.url + f"/cpu?ms={ms}")
        # one reading of the worker list per look: psutil can briefly list no child
        # while the master replaces its worker, and a second reading could be that one
        deadline, now = time.monotonic() + 10, before
        while time.monotonic() < deadline:
            now = server.pids
            if server.timeouts() and now and now != before:
                break
            time.sleep(0.1)
        record["timeouts_logged"] = server.timeouts()
        record["log"] = [line for line in server.log if "TIMEOUT" in line or "exit" in line
                         ][:6]
        record["replaced"] = bool(now) and now != before
    fixed_timeout = int(ms / 1000 * 2) + 2
    with web_run.GunicornServer("helpers.servers.demo_app:app", workers=1,
                                worker_class="sync", timeout=fixed_timeout) as server:
        record["fixed_timeout"] = fixed_timeout
        record["fixed_status"], _, record["fixed_seconds"] = _get(server.url + f"/cpu?ms={ms}")
        record["fixed_timeouts_logged"] = server.timeouts()
    return record


def explain_timeout(record: dict[str, Any]) -> str:
    ms, timeout = record["ms"], record["timeout"]
    if record["killed_status"] != 200 and record["timeouts_logged"]:
        seen = (f"status {record['killed_status']}" if record["killed_status"]
                else record["killed_body"][:60])
        first = (f"With `--timeout {timeout}`, the {ms:g} ms request never got its answer "
                 f"(the client got {seen} after {record['killed_seconds']:.1f} s, "
                 "from the dying worker): the sync worker was busy computing, "
                 "could not tell the master it was alive, and the master killed it, logging "
                 f"`WORKER TIMEOUT` ({record['timeouts_logged']}×), then started a new one.")
    else:
        first = (f"This time the {ms:g} ms request came back with status "
                 f"{record['killed_status']} and the master logged "
                 f"{record['timeouts_logged']} timeouts: the master checks about once a "
                 "second, so a request just over the limit can slip through. Try a longer "
                 "request.")
    fix = (f"With `--timeout {record['fixed_timeout']}` the same request answered "
           f"{record['fixed_status']} in {record['fixed_seconds']:.1f} s. The real fix for "
           "long CPU work is to keep it out of the request: offload it to a pool with a "
           "bound (the 503 app above) or to a job queue, and answer at once; raise "
           "`--timeout` only to above your slowest legitimate request.")
    return first + "\n\n" + fix


def recycling(max_requests: int = 20, jitter: int = 10, workers: int = 2,
              requests: int | None = None) -> dict[str, Any]:
    """``--max-requests`` with ``--max-requests-jitter``: how many worker processes served
    ``requests`` requests, and how many each served."""
    requests = requests or int(config.budget(200, 120))
    with web_run.GunicornServer("helpers.servers.demo_app:app", workers=workers,
                                worker_class="sync", max_requests=max_requests,
                                max_requests_jitter=jitter) as server:
        result = loadgen.load(server.url + "/whoami", requests=requests, concurrency=2,
                              max_seconds=config.budget(10, 5))
    per_pid = Counter(p for p in result.pids if p)
    return {"schema": SCHEMA_VERSION, "experiment": "recycling", "max_requests": max_requests,
            "jitter": jitter, "workers": workers, "requests": result.requests, "ok": result.ok,
            "failures": result.failures, "pids_seen": len(per_pid),
            "per_pid": sorted(per_pid.values(), reverse=True)}


def explain_recycling(record: dict[str, Any]) -> str:
    return (f"{record['ok']} of {record['requests']} requests were answered by "
            f"**{record['pids_seen']} different processes** although only "
            f"{record['workers']} ran at a time: each worker exits after "
            f"{record['max_requests']} + a random 0–{record['jitter']} requests and the master "
            f"starts a fresh one (requests per process: {record['per_pid']}). The jitter "
            "keeps the workers from all restarting at the same moment; recycling caps slow "
            f"memory leaks. {record['failures']} requests failed while workers were replaced.")


# --- section 4 (cont.): gunicorn's graceful timeout, and HUP reload vs --preload ---


@dataclass
class GracefulRequest:
    """One request that was in flight when gunicorn's master got SIGTERM."""

    ms: float  # CPU milliseconds it asked for
    status: int  # the HTTP status; 0: no answer (the connection was cut)
    body: str  # the answer, or the client's error when there was none
    seconds_after_signal: float  # when the answer (or the cut) came, counted from SIGTERM

    @property
    def completed(self) -> bool:
        return self.status == 200


@dataclass
class GracefulStop:
    """What :func:`graceful_stop` measured."""

    graceful_timeout: int  # gunicorn's --graceful-timeout, seconds
    short: GracefulRequest
    long: GracefulRequest
    busy_at_signal: int  # workers seen computing when SIGTERM was sent (2: both in flight)
    master_exit_code: int | None  # None: the master was still running after the wait
    master_exit_seconds: float | None  # after SIGTERM
    mode: str = field(default_factory=config.mode)
    schema: int = SCHEMA_VERSION
    experiment: str = "graceful"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed_get(url: str, into: dict[str, tuple[int, str, float]], key: str) -> None:
    status, body, _ = _get(url, timeout=60)
    into[key] = (status, body, time.perf_counter())


def _cpu_seconds(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def graceful_stop(short_ms: float = 300, long_ms: float = 2000,
                  graceful_timeout: int = 1) -> GracefulStop:
    """Two sync gunicorn workers, one computing ``short_ms`` and one ``long_ms`` of CPU, when
    the master gets SIGTERM with ``--graceful-timeout graceful_timeout``: which request
    finishes, and when the other is cut off."""
    validate.number("short_ms", short_ms, 0, demo_app.MAX_MS)
    validate.number("long_ms", long_ms, 0, demo_app.MAX_MS)
    validate.whole_number("graceful_timeout", graceful_timeout, 0, 60)
    answers: dict[str, tuple[int, str, float]] = {}
    with web_run.GunicornServer("helpers.servers.demo_app:app", workers=2,
                                worker_class="sync", timeout=30,
                                graceful_timeout=graceful_timeout) as server:
        workers = server.pids
        cpu_before = {pid: _cpu_seconds(pid) for pid in workers}
        clients = [threading.Thread(target=_timed_get, args=(server.url + f"/cpu?ms={ms}",
                                                            answers, key), daemon=True)
                   for key, ms in (("long", long_ms), ("short", short_ms))]
        for client in clients:
            client.start()
            time.sleep(0.05)  # the long one first: it is accepted by one worker, then
            # the short one by the other (a busy sync worker does not accept)
        busy, deadline = 0, time.monotonic() + 5  # both computing: 20 ms of CPU each
        while time.monotonic() < deadline and "short" not in answers:
            busy = sum(_cpu_seconds(pid) - cpu_before[pid] > 0.02 for pid in workers)
            if busy == len(workers):
                break
            time.sleep(0.01)
        exited: list[tuple[int | None, float]] = []
        sent = server.signal_master(signal.SIGTERM)
        waiter = threading.Thread(target=lambda: exited.append(
            (server.wait_exit(graceful_timeout + 15), time.perf_counter())), daemon=True)
        waiter.start()
        for client in clients:
            client.join(graceful_timeout + 70)
        waiter.join(graceful_timeout + 20)
    code, exit_at = exited[0] if exited else (None, None)

    def request(key: str, ms: float) -> GracefulRequest:
        status, body, at = answers.get(key, (0, "no answer at all", time.perf_counter()))
        return GracefulRequest(ms=ms, status=status, body=body, seconds_after_signal=at - sent)

    return GracefulStop(graceful_timeout=graceful_timeout, short=request("short", short_ms),
                        long=request("long", long_ms), busy_at_signal=busy,
                        master_exit_code=code,
                        master_exit_seconds=None if code is None else exit_at - sent)


def _outcome(request: GracefulRequest) -> str:
    if request.completed:
        return f"answered **200** {request.seconds_after_signal:.2f} s after SIGTERM"
    if request.status:
        return (f"answered **{request.status}** {request.seconds_after_signal:.2f} s after "
                "SIGTERM")
    return (f"got **no answer**: its connection was cut {request.seconds_after_signal:.2f} s "
            f"after SIGTERM (the client said `{request.body[:70]}`)")


def explain_graceful(record: GracefulStop) -> str:
    """What the learner's graceful-stop run shows, with their numbers."""
    g = record.graceful_timeout
    short, long = record.short, record.long
    parts = [f"Two sync workers were computing, one a {short.ms:g} ms request and one a "
             f"{long.ms:g} ms request, when the master got SIGTERM with "
             f"`--graceful-timeout {g}` ({record.busy_at_signal} of the 2 workers were seen "
             "busy at that moment)."]
    parts.append(f"- the {short.ms:g} ms request {_outcome(short)};")
    parts.append(f"- the {long.ms:g} ms request {_outcome(long)}.")
    if record.master_exit_seconds is not None:
        parts.append(f"The master exited (code {record.master_exit_code}) "
                     f"{record.master_exit_seconds:.2f} s after the signal.")
    if short.completed and not long.completed:
        near = abs(long.seconds_after_signal - g) < 0.5
        parts.append("On SIGTERM the master stops accepting and tells each worker to finish "
                     "the request it holds, then exit. The short request fitted inside the "
                     f"{g} s of grace and its client never noticed; the long one did not"
                     + (", and when the grace ran out the master killed its worker (with "
                        "SIGKILL), which cut the connection" if near else
                        f", and it ended without an answer {long.seconds_after_signal:.2f} s "
                        f"after the signal, not when the {g} s of grace ran out: something "
                        "else ended it first (a busy machine, or the worker itself failing), "
                        "so run it again to see the usual kill at the end of the grace")
                     + ". Set `--graceful-timeout` above your slowest legitimate request "
                     "(and your orchestrator's own kill timer, such as Kubernetes' "
                     "`terminationGracePeriodSeconds`, above that), or a deploy drops "
                     "requests.")
    elif short.completed and long.completed:
        parts.append("Both requests finished: in this run the long one fitted into the grace "
                     "period too (the master counts from the signal, and the request had "
                     "started computing before it). Try a longer request or a shorter "
                     "`--graceful-timeout`.")
    else:
        parts.append("This run did not show a short request finishing and a long one cut "
                     "(the machine may have been too busy for the short one to fit in the "
                     "grace period): run it again.")
    return "\n".join(parts)


#: The module the reload experiment deploys (written into a temporary folder on PYTHONPATH).
DEPLOYED_MODULE = "course_deployed_app"
DEPLOYED_SOURCE = '''"""Your application, version {version} (written by the reload experiment)."""

import json
import os

VERSION = {version}


def app(environ, start_response):
    body = json.dumps({{"version": VERSION, "pid": os.getpid()}}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


@dataclass
class ReloadRun:
    """One gunicorn, its code changed on disk, then SIGHUP: which version answered."""

    preload: bool
    versions_before: list[int | None]  # the version each request answered before HUP
    versions_after: list[int | None]  # ... and after the new workers were up
    pids_before: list[int]  # the workers before HUP
    pids_after: list[int]  # ... and after it
    answered_by: list[int]  # the pids that answered after HUP
    workers_replaced: bool  # every worker after HUP is new
    reload_seconds: float  # SIGHUP -> all workers new (or the wait ran out)
    mode: str = field(default_factory=config.mode)
    schema: int = SCHEMA_VERSION
    experiment: str = "reload"

    @property
    def new_code(self) -> bool:
        """Every answer after HUP came from the new code (version 2)."""
        return bool(self.versions_after) and set(self.versions_after) == {2}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(url: str) -> tuple[int | None, int | None]:
    status, body, _ = _get(url + "/")
    if status != 200:
        return None, None
    try:
        answer = json.loads(body)
    except ValueError:
        return None, None
    return answer.get("version"), answer.get("pid")


def hup_reload(workers: int = 2, requests: int = 6) -> list[ReloadRun]:
    """Without and with ``--preload``: serve version 1 of a small app, write version 2 over
    it, send SIGHUP, wait for new workers, and ask ``requests`` times which version answers."""
    validate.whole_number("workers", workers, 1, 8)
    validate.whole_number("requests", requests, 1, 1000)
    runs = []
    for preload in (False, True):
        with tempfile.TemporaryDirectory(prefix="course-reload-") as folder:
            module = Path(folder) / f"{DEPLOYED_MODULE}.py"
            module.write_text(DEPLOYED_SOURCE.format(version=1))
            path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
            # no .pyc: version 2 has the same size as version 1 and may be written within
            # the same second, which a cached .pyc (keyed on mtime and size) cannot tell apart
            env = {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
            with web_run.GunicornServer(f"{DEPLOYED_MODULE}:app", workers=workers,
                                        worker_class="sync", preload=preload,
                                        env=env) as server:
                before = [_version(server.url) for _ in range(requests)]
                old = server.pids
                module.write_text(DEPLOYED_SOURCE.format(version=2))  # the deploy
                sent = server.signal_master(signal.SIGHUP)
                new = server.wait_for_new_workers(old, 15)
                seconds = time.perf_counter() - sent
                after = [_version(server.url) for _ in range(requests)]
        runs.append(ReloadRun(preload=preload, versions_before=[v for v, _ in before],
                              versions_after=[v for v, _ in after], pids_before=old,
                              pids_after=new, answered_by=sorted({p for _, p in after if p}),
                              workers_replaced=bool(new) and not set(new) & set(old),
                              reload_seconds=seconds))
    return runs


def _versions(values: list[int | None]) -> str:
    seen = sorted({v for v in values if v is not None})
    text = " and ".join(f"version {v}" for v in seen) or "nothing"
    failed = sum(v is None for v in values)
    return text + (f" ({failed} of {len(values)} requests failed)" if failed else "")


def explain_reload(runs: list[ReloadRun]) -> str:
    """What the learner's reload run shows: which version each gunicorn served after HUP."""
    parts = ["Both times gunicorn served version 1 of a small app from a temporary folder; "
             "the file was then overwritten with version 2 and the master got SIGHUP."]
    for run in runs:
        name = "with `--preload`" if run.preload else "without `--preload`"
        replaced = (f"all {len(run.pids_after)} workers were new "
                    f"{run.reload_seconds:.2f} s after HUP" if run.workers_replaced else
                    f"after {run.reload_seconds:.2f} s the workers were not all new "
                    f"(before {run.pids_before}, after {run.pids_after})")
        parts.append(f"- **{name}**: before HUP the workers answered "
                     f"{_versions(run.versions_before)}; {replaced}, and they answered "
                     f"**{_versions(run.versions_after)}**.")
    plain = next((r for r in runs if not r.preload), None)
    preloaded = next((r for r in runs if r.preload), None)
    if (plain and preloaded and plain.workers_replaced and preloaded.workers_replaced
            and plain.new_code and set(preloaded.versions_after) == {1}):
        parts.append("HUP replaced the workers both times, but only the first gunicorn "
                     "loaded the new code. Without `--preload` each new worker imports the "
                     "app itself, after the fork, so it reads the file as it is now. With "
                     "`--preload` the master imported the app once, before forking, and HUP "
                     "forks the new workers from that same master: they inherit the old "
                     "module from its memory, and the file on disk is never read again. "
                     "`--preload` saves memory and start-up time (the workers share the "
                     "imported pages), but a code deploy then needs a full restart (or a "
                     "USR2 re-exec of the master), not a HUP.")
    else:
        parts.append("This run did not show the usual split (new code without `--preload`, "
                     "old code with it): look at which workers were replaced above, and "
                     "run it again.")
    return "\n".join(parts)


# --- 4. who serves: shared accept queue, SO_REUSEPORT, Node's round-robin ---


def node_available() -> str | None:
    """None if Node.js 18+ is on PATH, else why not (the Node part is then skipped)."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH (install Node.js 18+ to compare with its cluster module)"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return f"{node} did not report a version"
    if major < MIN_NODE:
        return f"node {version} is older than {MIN_NODE}"
    return None


class NodeCluster:
    """``node helpers/servers/node_cluster.js N``: exits when stdin closes (the kernel)."""

    def __init__(self, workers: int = 2) -> None:
        reason = node_available()
        if reason is not None:
            raise RuntimeError(reason)
        self.workers = workers
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> NodeCluster:
        self._process = subprocess.Popen([shutil.which("node"), str(NODE_SCRIPT),
                                          str(self.workers)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(20)
        text = re.sub(r"\x1b\[[0-9;]*m", "", line[0]).strip() if line else ""  # no colours
        if not text.isdigit():
            self.stop()
            raise RuntimeError(f"node's cluster did not report its port within 20 s "
                               f"(it said {text!r})")
        self.port = int(text)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self._process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        children = []
        try:
            import psutil

            children = psutil.Process(process.pid).children()
        except Exception:
            pass
        process.stdin.close()  # the script's own way out: it kills its workers and exits
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for child in children:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except OSError:
                pass
        process.stdout.close()


def _shares(result: LoadResult, pids: list[int]) -> list[float]:
    counts = Counter(p for p in result.pids if p)
    total = sum(counts.values()) or 1
    return sorted((counts.get(p, 0) / total for p in set(pids) | set(counts)), reverse=True)


def worker_shares(ms: float = 2, workers: int | None = None, concurrency: int | None = None,
                  requests: int | None = None) -> list[dict[str, Any]]:
    """The share of requests each worker served (by default under light load: one client),
    with one shared socket (PreforkServer, uvicorn --workers), SO_REUSEPORT (Linux),
    and Node's cluster (when node 18+ is on PATH; else a record saying why it was skipped)."""
    workers = workers or machine.usable_cpus()
    workers = max(2, workers)
    concurrency = concurrency or 1  # light load: which worker takes it is the kernel's pick
    requests = requests or int(config.budget(600, 200))
    servers: list[tuple[str, Any, str]] = [
        ("shared socket (PreforkServer)", lambda: prefork.PreforkServer(workers=workers),
         "/cpu")]
    if web_run.available() is None:
        servers.append(("shared socket (uvicorn --workers)",
                        lambda: web_run.UvicornServer(workers=workers), "/cpu_async"))
    if hasattr(os, "sched_getaffinity") and hasattr(__import__("socket"), "SO_REUSEPORT"):
        servers.append(("SO_REUSEPORT (PreforkServer)",
                        lambda: prefork.PreforkServer(workers=workers, reuse_port=True), "/cpu"))
    node_reason = node_available()
    if node_reason is None:
        servers.append(("Node cluster (round-robin)", lambda: NodeCluster(workers), "/cpu"))
    rows = []
    for label, make, route in servers:
        with make() as server:
            pids = server.pids
            result = loadgen.load(server.url + f"{route}?ms={ms}", requests=requests,
                                  concurrency=concurrency, max_seconds=config.budget(10, 5))
        rows.append(_record("shares", label, result, shares=_shares(result, pids),
                            workers=workers, ms=ms, concurrency=concurrency, skipped=None))
    if node_reason is not None:
        rows.append({"schema": SCHEMA_VERSION, "experiment": "shares",
                     "label": "Node cluster (round-robin)", "skipped": node_reason,
                     "shares": [], "workers": workers})
    return rows


def explain_shares(rows: list[dict[str, Any]]) -> str:
    run = [r for r in rows if not r.get("skipped")]
    workers = run[0]["workers"]
    clients = run[0]["concurrency"]
    parts = [f"{workers} workers, {clients} client(s), {run[0]['ms']:g} ms of CPU per "
             f"request; a perfectly even spread gives each worker {1 / workers:.0%}."
             + (" With one request at a time, every worker is idle when a connection "
                "arrives, so the choice is entirely the kernel's (or Node's)."
                if clients == 1 else "")]
    for row in run:
        shares = ", ".join(f"{s:.0%}" for s in row["shares"])
        off = max(abs(s - 1 / workers) for s in row["shares"]) if row["shares"] else 0.0
        verdict = ("close to even" if off <= 0.1 else
                   f"uneven: {off * 100:.0f} percentage points off an even share")
        parts.append(f"- **{row['label']}**: shares {shares} ({verdict}); "
                     f"{row['throughput_per_s']:.0f} requests/s, p99 {row['p99_ms']:.0f} ms.")
    for row in rows:
        if row.get("skipped"):
            parts.append(f"- **{row['label']}**: skipped: {row['skipped']}.")
    parts.append("With one shared socket, whichever idle worker gets to `accept` first takes "
                 "the connection (a blocking `accept` or epoll wakes the most recently "
                 "waiting worker, so servers built that way, such as uvicorn's workers, "
                 "favour a few workers under light load; the course's PreforkServer wakes "
                 "them all with `select` and lets them race); "
                 "under full load it evens out, because only idle workers accept. "
                 "SO_REUSEPORT gives each worker its own "
                 "queue and hashes connections over them: even on average, but a connection "
                 "can wait behind a busy worker while another is idle. Node's primary accepts "
                 "every connection itself and hands them out in turn: the most even spread, "
                 "paid for with one extra hop through the primary.")
    return "\n".join(parts)


# --- 5. open vs closed loop ---


def open_vs_closed(ms: float = 10, workers: int | None = None, overload: float = 1.5,
                   seconds: float | None = None) -> list[dict[str, Any]]:
    """A PreforkServer of ``workers`` under a closed loop (2 × workers clients) and under
    an open loop at ``overload`` × its capacity: the latency each reports."""
    workers = workers or machine.usable_cpus()
    seconds = seconds or seconds_per_run()
    capacity = min(workers, machine.usable_cpus()) * 1000 / ms
    rows = []
    with prefork.PreforkServer(workers=workers) as server:
        url = server.url + f"/cpu?ms={ms}"
        closed = loadgen.load(url, requests=100_000, concurrency=2 * workers,
                              max_seconds=seconds)
        rows.append(_record("open_loop", f"closed loop, {2 * workers} clients", closed,
                            loop="closed", capacity=capacity, ms=ms, workers=workers,
                            rate=None, timeline=_timeline(closed)))
        opened = loadgen.load(url, requests=100_000, max_seconds=seconds,
                              rate=overload * capacity)
        rows.append(_record("open_loop", f"open loop, {overload * capacity:.0f}/s", opened,
                            loop="open", capacity=capacity, ms=ms, workers=workers,
                            rate=overload * capacity, timeline=_timeline(opened)))
    return rows


def _timeline(result: LoadResult) -> list[tuple[float, float]]:
    """(start s, latency ms) of each answered request."""
    return [(s, lat * 1000) for s, lat, st in zip(result.starts, result.latencies,
                                                 result.statuses, strict=True)
            if 200 <= st < 300]


def explain_open_loop(rows: list[dict[str, Any]]) -> str:
    closed, opened = _pick(rows, loop="closed"), _pick(rows, loop="open")
    text = (f"The server can do about {closed['capacity']:.0f} requests/s. The **closed "
            f"loop** ({closed['label']}) never has more than its clients waiting, so it "
            f"slowed down with the server and reported p99 {closed['p99_ms']:.0f} ms at "
            f"{closed['throughput_per_s']:.0f} requests/s. The **open loop** sent "
            f"{opened['rate']:.0f} requests/s whatever happened, as real users do, and "
            f"counted each latency from when the request was due: p99 "
            f"{opened['p99_ms']:.0f} ms, growing through the run (right plot) because the "
            "queue grows by the excess every second.")
    if opened["p99_ms"] > closed["p99_ms"]:
        text += (" The closed loop's p99 hid that queue: its clients waited *before* "
                 "sending (coordinated omission). Measure overload with an open loop.")
    else:
        text += (" Here the open loop did not report worse latency: the run may have been "
                 "too short for the queue to build; try full mode.")
    return text


# --- the dashboard's experiment ---


def offload_run(pool_workers: int = 2, max_in_flight: int = 2, shed: bool = True,
                ms: float = 20, rate: float = 100, seconds: float = 2.0) -> dict[str, Any]:
    """One open-loop run at ``rate`` requests/s on ``/cpu_offload`` with these settings."""
    env = {"WEB_POOL_WORKERS": str(pool_workers), "WEB_MAX_IN_FLIGHT": str(max_in_flight),
           "WEB_SHED": "1" if shed else "0"}
    with web_run.UvicornServer(env=env) as server:
        url = server.url + f"/cpu_offload?ms={ms}"
        loadgen.load(url, requests=pool_workers, concurrency=pool_workers, max_seconds=5)
        result = loadgen.load(url, requests=100_000, max_seconds=seconds, rate=rate)
    capacity = pool_workers * 1000 / ms
    return _record("shedding", f"{'shed' if shed else 'queue'}, {rate:.0f}/s", result,
                   shed=shed, level="above" if rate > capacity else "below", rate=rate,
                   capacity=capacity, ms=ms, pool_workers=pool_workers,
                   max_in_flight=max_in_flight)


# --- small things the notebook shows ---


def bad_input_demo(paths_to_try: tuple[str, ...] = (
        "/cpu_async?ms=5", "/cpu_async?ms=5000", "/cpu_async?ms=abc", "/nowhere",
        "/cpu_offload?ms=5")) -> list[dict[str, Any]]:
    """What the app answers to good and bad requests (one uvicorn process, a pool of 1)."""
    rows = []
    with web_run.UvicornServer(env={"WEB_POOL_WORKERS": "1"}) as server:
        for path in paths_to_try:
            status, body, seconds = _get(server.url + path)
            rows.append({"request": path, "status": status, "body": body[:160],
                         "ms": seconds * 1000})
        rows.append({"request": "(server still up?)", "status": _get(server.url + "/cheap")[0],
                     "body": "", "ms": 0.0})
    return rows


def convoy_verdict(prediction: Any, rows: list[dict[str, Any]]) -> str:
    """Compare the learner's prediction (a mode name) with the mode whose /cheap was
    fastest (lowest p99) in their run."""
    cheap = {r["route"]: r["p99_ms"] for r in rows if r["side"] == "cheap"}
    best = min(cheap, key=cheap.get)
    if prediction is Ellipsis or prediction not in CONVOY_MODES:
        return (f"(No prediction recorded: it should be one of {', '.join(CONVOY_MODES)}.) "
                f"The fastest `/cheap` was beside **{best}** (p99 {cheap[best]:.0f} ms).")
    if prediction == best:
        return (f"You predicted **{prediction}**, and it was: `/cheap` p99 "
                f"{cheap[best]:.0f} ms beside it.")
    return (f"You predicted **{prediction}** (p99 {cheap[prediction]:.0f} ms), but `/cheap` "
            f"was fastest beside **{best}** (p99 {cheap[best]:.0f} ms). The explanation "
            "below says why.")
