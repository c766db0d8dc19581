"""One asyncio server process, with CPU routes inline or offloaded to a process pool.

::

    AsyncAppServer(mode="inline")          AsyncAppServer(mode="offload", workers=N)
    ┌ server process: one event loop ┐     ┌ server process: one event loop ──────────┐
    │ parse request                  │     │ parse request                            │
    │ app(environ) ON THE LOOP       │     │ /cpu...  ──> WorkerPool (N processes)     │
    │ (a 20 ms /cpu stops everything)│     │ the rest ──> a thread (asyncio.to_thread) │
    └────────────────────────────────┘     └──────────────────────────────────────────┘

The production pattern "event loop in front, processes behind": the loop only parses
requests and writes answers, so it stays responsive, and CPU-heavy routes run in
parallel in a pool. The pool's queue is bounded: with ``max_in_flight`` CPU requests
already running or waiting, the next one is answered ``503 Service Unavailable`` (with
``Retry-After``) at once, instead of waiting in a queue that only grows (load shedding).
Both modes run the same WSGI app as :mod:`helpers.servers.prefork`.
Requests are HTTP/1.0 (one per connection); a slow client is dropped after
``request_timeout``; bad requests get a 4xx. Loopback only.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing.connection
import multiprocessing.util
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from helpers.core import config, validate, watchdog
from helpers.pool import WorkerPool
from helpers.servers import demo_app
from helpers.servers.loadgen import check_loopback

MODES = ("inline", "offload")
IN_FLIGHT_PER_WORKER = 8  # the default bound: CPU requests running or queued, per worker
MAX_HEADER_BYTES = 16 * 1024
START_TIMEOUT_SECONDS = 30.0


def call_app(app: Callable, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app on a plain-data environ (picklable): (status, headers, body)."""
    environ = {**environ, "wsgi.input": io.BytesIO(environ.pop("course.body", b"")),
               "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
               "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False}
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None
                       ) -> Callable[[bytes], None]:
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def _busy() -> tuple[str, list[tuple[str, str]], bytes]:
    """The answer to a CPU request beyond the bound: shed it, and say when to retry."""
    status, headers, body = _error("503 Service Unavailable", "busy: retry later")
    return status, [*headers, ("Retry-After", "1")], body


def _error(status: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = f'{{"error": "{message}"}}'.encode()
    return status, [("Content-Type", "application/json"),
                    ("Content-Length", str(len(body)))], body


async def _read_request(reader: asyncio.StreamReader, port: int
                        ) -> dict[str, Any] | tuple[str, list[tuple[str, str]], bytes]:
    """A plain-data WSGI environ, or an error answer for a bad request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        return _error("431 Request Header Fields Too Large", "headers too large")
    except asyncio.IncompleteReadError:
        return _error("400 Bad Request", "incomplete request")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _error("400 Bad Request", "malformed request line")
    method, target, _ = parts
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                return _error("400 Bad Request", "malformed header")
            headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return _error("400 Bad Request", "Content-Length is not a number")
    if length > demo_app.MAX_BODY_BYTES:
        return _error("413 Content Too Large", "body too large")
    url = urlsplit(target)
    return {"REQUEST_METHOD": method, "PATH_INFO": url.path or "/", "QUERY_STRING": url.query,
            "CONTENT_LENGTH": str(length), "CONTENT_TYPE": headers.get("content-type", ""),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(port), "SERVER_PROTOCOL": "HTTP/1.0",
            "course.body": await reader.readexactly(length) if length else b""}


async def _serve(listener: socket.socket, app: Callable, mode: str, workers: int,
                 cpu_paths: tuple[str, ...], request_timeout: float, max_in_flight: int,
                 ready: multiprocessing.connection.Connection) -> None:
    loop = asyncio.get_running_loop()
    pool = WorkerPool(workers, mp_context=config.mp_context()) if mode == "offload" else None
    if pool is not None:  # start the workers before the first request
        await asyncio.gather(*(loop.run_in_executor(pool, time.sleep, 0.02)
                               for _ in range(2 * workers)))
    port = listener.getsockname()[1]
    in_flight = 0  # CPU requests in the pool (running or queued); only the loop changes it

    async def offload(request: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        nonlocal in_flight
        if in_flight >= max_in_flight:
            return _busy()
        in_flight += 1
        try:
            return await loop.run_in_executor(pool, call_app, app, request)
        finally:
            in_flight -= 1

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader, port), request_timeout)
            if isinstance(request, tuple):
                answer = request
            elif mode == "inline":
                answer = call_app(app, request)
            elif request["PATH_INFO"] in cpu_paths:
                answer = await offload(request)
            else:
                answer = await asyncio.to_thread(call_app, app, request)
            status, headers, body = answer
            writer.write(f"HTTP/1.0 {status}\r\n".encode()
                         + "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
                         + b"\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a slow or vanished client: drop it, the others are unaffected
        finally:
            writer.close()

    stop = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # graceful stop (Unix)
    except NotImplementedError:
        pass  # Windows: no signal handlers in asyncio; terminate() ends the process at once
    server = await asyncio.start_server(handle, sock=listener, limit=MAX_HEADER_BYTES)
    ready.send("ready")
    ready.close()
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        if pool is not None:
            pool.shutdown(wait=True)


def serve_async(listener: socket.socket, app: Callable, mode: str, workers: int,
                cpu_paths: tuple[str, ...], request_timeout: float, max_in_flight: int,
                ready: multiprocessing.connection.Connection) -> None:
    """The server process: an event loop until SIGTERM."""
    watchdog.worker_setup()
    asyncio.run(_serve(listener, app, mode, workers, cpu_paths, request_timeout,
                       max_in_flight, ready))


class AsyncAppServer:
    """An asyncio server process for a WSGI app: ``inline``, or ``offload`` to a WorkerPool.

    ``max_in_flight`` (offload mode) bounds the CPU requests running or queued in the
    pool, by default ``IN_FLIGHT_PER_WORKER`` per worker; past it, a CPU request gets 503.
    """

    def __init__(self, mode: str = "offload", workers: int | None = None,
                 app: Callable = demo_app.app, host: str = "127.0.0.1", port: int = 0, *,
                 cpu_paths: tuple[str, ...] = ("/cpu",), request_timeout: float = 5.0,
                 start_method: str | None = None, max_in_flight: int | None = None) -> None:
        from helpers.core import machine

        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        workers = machine.usable_cpus() if workers is None else workers
        validate.whole_number("workers", workers, 1, validate.MAX_SERVER_WORKERS)
        max_in_flight = IN_FLIGHT_PER_WORKER * workers if max_in_flight is None else max_in_flight
        validate.whole_number("max_in_flight", max_in_flight, 1, 100_000)
        check_loopback(host)
        self.max_in_flight = max_in_flight
        self.mode, self.workers, self.app = mode, workers, app
        self.host, self.port, self.cpu_paths = host, port, cpu_paths
        self.request_timeout = request_timeout
        self.context = config.mp_context(start_method)
        self._process: Any = None

    def __enter__(self) -> AsyncAppServer:
        listener = socket.create_server((self.host, self.port))
        self.address = listener.getsockname()[:2]
        ready_r, ready_w = self.context.Pipe(duplex=False)
        # Not a daemon: it starts a pool of its own. A finalizer stops it when this
        # interpreter exits, before multiprocessing waits for non-daemon children.
        self._process = self.context.Process(
            target=serve_async, name=f"async-server-{self.mode}", daemon=False,
            args=(listener, self.app, self.mode, self.workers, self.cpu_paths,
                  self.request_timeout, self.max_in_flight, ready_w))
        self._process.start()
        ready_w.close()
        listener.close()  # the server process has its own copy
        self._finalizer = multiprocessing.util.Finalize(self, _stop_process,
                                                        args=(self._process,), exitpriority=10)
        try:
            multiprocessing.connection.wait([ready_r, self._process.sentinel],
                                            START_TIMEOUT_SECONDS)
            ok = ready_r.poll() and ready_r.recv() == "ready"
        except EOFError:  # it exited before it was ready
            ok = False
        ready_r.close()
        if not ok:
            self.stop()
            raise RuntimeError("the asyncio server process did not start; see its stderr")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        """SIGTERM the server (it stops its pool), then make sure it is gone."""
        if self._process is not None:
            self._finalizer()
            self._process = None


def _stop_process(process: Any, grace_seconds: float = 10.0) -> None:
    process.terminate()
    process.join(grace_seconds)
    if process.is_alive():
        process.kill()
        process.join()
