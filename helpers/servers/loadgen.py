"""A loopback load generator: N concurrent clients, bounded in requests and in time.

::

    load(url, requests=500, concurrency=8, max_seconds=10)
      └─ a separate process (so the clients' CPU use is not the server's, and is reported)
           asyncio: `concurrency` clients, each: connect, GET, read the answer, repeat
           stops at `requests` answers or after `max_seconds`, whichever comes first
      ──> LoadResult: one record per request (start, latency, status, who answered),
          throughput, p50/p95/p99 latency, failures by kind, the generator's CPU seconds

That is a *closed loop*: a slow server slows the clients down, so requests that would have
arrived meanwhile are never sent and their waiting is never measured (coordinated
omission). ``load(url, rate=R)`` is an *open loop* instead: one request every 1/R s, on
schedule whatever the answers, each latency counted from when it was due.

Each request uses its own HTTP/1.0 connection (the server closes it after answering),
the way a sync worker serves. Only loopback URLs are accepted. On a 2-core machine the
generator competes with the server for the CPUs: its CPU time is in the result, so you
can see how much of the machine it took. Standard library only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from helpers.core import config, measure, watchdog

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256
MAX_RATE = 5000.0
MAX_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class LoadResult:
    """What a load run measured. Plain data: plots and checks read it."""

    url: str
    concurrency: int
    wall_seconds: float
    cpu_seconds: float  # used by the load generator itself
    starts: list[float] = field(default_factory=list)  # seconds since the run began
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: list[int] = field(default_factory=list)  # HTTP status, 0 when it failed
    errors: list[str] = field(default_factory=list)  # "" or the failure's kind
    pids: list[int] = field(default_factory=list)  # who answered (0: unknown)
    #: None: closed loop (``concurrency`` clients back to back); a number: open loop, one
    #: request every 1/rate s whatever the answers, latency counted from when it was due
    rate: float | None = None

    @property
    def requests(self) -> int:
        return len(self.statuses)

    @property
    def ok(self) -> int:
        return sum(200 <= s < 300 for s in self.statuses)

    @property
    def failures(self) -> int:
        return self.requests - self.ok

    def failure_kinds(self) -> dict[str, int]:
        return dict(Counter(e or f"HTTP {s}" for e, s in zip(self.errors, self.statuses,
                                                              strict=True)
                            if not 200 <= s < 300))

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile (seconds) of the successful requests (nearest rank)."""
        return measure.percentile((lat for lat, s in zip(self.latencies, self.statuses,
                                                          strict=True) if 200 <= s < 300), p)

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "ok": self.ok, "failures": self.failures,
                "throughput_per_s": self.throughput,
                "p50_ms": self.percentile(50) * 1000, "p95_ms": self.percentile(95) * 1000,
                "p99_ms": self.percentile(99) * 1000, "load_cpu_seconds": self.cpu_seconds,
                "wall_seconds": self.wall_seconds, "workers_seen": len(set(self.pids) - {0})}

    def _repr_markdown_(self) -> str:
        s = self.summary()
        failed = f" ({self.failure_kinds()})" if self.failures else ""
        return (f"{s['ok']} of {s['requests']} requests answered in {s['wall_seconds']:.2f} s: "
                f"**{s['throughput_per_s']:.0f} requests/s**, latency p50 {s['p50_ms']:.1f} ms, "
                f"p95 {s['p95_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms; "
                f"{s['failures']} failed{failed}; {s['workers_seen']} server processes "
                f"answered; the load generator used {s['load_cpu_seconds']:.2f} s of CPU.")


def check_loopback(host: str, allow_remote: bool = False) -> None:
    """Refuse to listen on (or load) anything but this machine, unless asked to."""
    if allow_remote:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"host {host!r} is not a loopback address: the course serves and "
                         "loads 127.0.0.1 only (pass allow_remote=True if you really mean it)")


def check_url(url: str) -> tuple[str, int, str]:
    """(host, port, path+query) of a loopback http URL, or a clear ValueError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"url must look like http://127.0.0.1:PORT/path, got {url!r}")
    check_loopback(parts.hostname)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port, path


async def _one_request(host: str, port: int, path: str) -> tuple[int, int, str]:
    """(status, pid of the answering process or 0, error kind or "")."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()  # HTTP/1.0: the server closes when it is done
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head:
        return 0, 0, "empty answer"
    status = int(head.split(b" ", 2)[1])
    try:
        pid = int(json.loads(body).get("pid", 0))
    except (ValueError, AttributeError):
        pid = 0
    return status, pid, ""


async def _run(url: str, requests: int, concurrency: int, max_seconds: float,
               rate: float | None = None) -> dict[str, Any]:
    if rate is not None:
        return await _run_open(url, requests, max_seconds, rate)
    host, port, path = check_url(url)
    origin, deadline = time.perf_counter(), time.perf_counter() + max_seconds
    records: list[tuple[float, float, int, str, int]] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                status, pid, error = await asyncio.wait_for(
                    _one_request(host, port, path), REQUEST_TIMEOUT_SECONDS)
            except (TimeoutError, OSError, ValueError, IndexError) as failure:
                status, pid, error = 0, 0, type(failure).__name__
            records.append((start - origin, time.perf_counter() - start, status, error, pid))

    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    records.sort()
    return asdict(LoadResult(
        url=url, concurrency=concurrency, wall_seconds=time.perf_counter() - origin,
        cpu_seconds=time.process_time() - cpu,
        starts=[r[0] for r in records], latencies=[r[1] for r in records],
        statuses=[r[2] for r in records], errors=[r[3] for r in records],
        pids=[r[4] for r in records]))


async def _run_open(url: str, requests: int, max_seconds: float, rate: float
                    ) -> dict[str, Any]:
    """Open loop: request i is due at i / rate s, sent then whether or not earlier ones
    have been answered (at most MAX_CONCURRENCY at once; beyond that it fails as
    "client limit"). Its latency counts from when it was due, so time spent queueing
    behind a slow server is not hidden (no coordinated omission)."""
    host, port, path = check_url(url)
    origin = time.perf_counter()
    records: list[tuple[float, float, int, str, int]] = []
    outstanding = 0

    async def one(due: float) -> None:
        nonlocal outstanding
        if outstanding >= MAX_CONCURRENCY:
            records.append((due - origin, 0.0, 0, "client limit", 0))
            return
        outstanding += 1
        try:
            status, pid, error = await asyncio.wait_for(
                _one_request(host, port, path), REQUEST_TIMEOUT_SECONDS)
        except (TimeoutError, OSError, ValueError, IndexError) as failure:
            status, pid, error = 0, 0, type(failure).__name__
        finally:
            outstanding -= 1
        records.append((due - origin, time.perf_counter() - due, status, error, pid))

    cpu = time.process_time()
    tasks = []
    for i in range(requests):
        due = origin + i / rate
        if due - origin >= max_seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    records.sort()
    return asdict(LoadResult(
        url=url, concurrency=MAX_CONCURRENCY, wall_seconds=time.perf_counter() - origin,
        cpu_seconds=time.process_time() - cpu,
        starts=[r[0] for r in records], latencies=[r[1] for r in records],
        statuses=[r[2] for r in records], errors=[r[3] for r in records],
        pids=[r[4] for r in records], rate=rate))


def _load_process(url: str, requests: int, concurrency: int, max_seconds: float,
                  results: Any, rate: float | None = None) -> None:
    watchdog.worker_setup()
    results.send(asyncio.run(_run(url, requests, concurrency, max_seconds, rate)))
    results.close()


class LoadRun:
    """A load run going on in its own process; :meth:`result` waits for it."""

    def __init__(self, url: str, requests: int, concurrency: int, max_seconds: float,
                 rate: float | None = None) -> None:
        check_url(url)
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not 0 < rate <= MAX_RATE):
            raise ValueError(f"rate must be above 0 and at most {MAX_RATE} requests/s "
                             f"(or None for a closed loop), got {rate!r}")
        if not 1 <= requests <= MAX_REQUESTS:
            raise ValueError(f"requests must be 1 to {MAX_REQUESTS}, got {requests!r}")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY}, got {concurrency!r}")
        if not 0 < max_seconds <= MAX_SECONDS:
            raise ValueError(f"max_seconds must be above 0 and at most {MAX_SECONDS:g}, "
                             f"got {max_seconds!r}")
        self.max_seconds = max_seconds
        context = config.mp_context()
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_load_process, name="load-generator",
                                        args=(url, requests, concurrency, max_seconds, sender,
                                              rate),
                                        daemon=True)
        self._process.start()
        sender.close()
        self.started = time.monotonic()

    def result(self) -> LoadResult:
        """Wait for the run (at most its time bound plus the request timeout)."""
        limit = self.max_seconds + REQUEST_TIMEOUT_SECONDS + 10
        try:
            if not self._results.poll(max(0.0, limit - (time.monotonic() - self.started))):
                raise TimeoutError(f"the load generator did not finish within {limit:.0f} s")
            return LoadResult(**self._results.recv())
        finally:
            self._process.kill()
            self._process.join()
            self._results.close()


def start_load(url: str, requests: int = 1000, concurrency: int = 8,
               max_seconds: float = 10.0, *, rate: float | None = None) -> LoadRun:
    """Start a load run in the background (its own process); call ``.result()`` later.

    ``rate`` (requests/s) makes it an open loop: requests are sent on a fixed schedule
    and ``concurrency`` is not used."""
    return LoadRun(url, requests, concurrency, max_seconds, rate)


def load(url: str, requests: int = 1000, concurrency: int = 8,
         max_seconds: float = 10.0, *, rate: float | None = None) -> LoadResult:
    """Send up to ``requests`` GETs to ``url`` from ``concurrency`` clients; wait for all.
    With ``rate``, send one every 1/rate s instead (an open loop)."""
    return start_load(url, requests, concurrency, max_seconds, rate=rate).result()


def per_interval(result: LoadResult, interval: float = 0.1) -> tuple[list[float], list[int],
                                                                       list[int]]:
    """(interval starts, answered, failed) per ``interval`` of the run, by completion time."""
    bins = max(1, math.ceil(result.wall_seconds / interval))
    answered, failed = [0] * bins, [0] * bins
    for start, latency, status in zip(result.starts, result.latencies, result.statuses,
                                      strict=True):
        index = min(bins - 1, int((start + latency) / interval))
        if 200 <= status < 300:
            answered[index] += 1
        else:
            failed[index] += 1
    return [i * interval for i in range(bins)], answered, failed


