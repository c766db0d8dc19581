"""The cluster pattern: a pre-fork server with a supervisor (Node's ``cluster`` module).

::

    parent (your kernel, or ``python -m helpers.servers.prefork``)
      binds ONE listening socket on 127.0.0.1 ──────────────┐ shared with every worker
      supervisor thread: waits on the workers' sentinels     │
        a worker died ──> start a replacement (back-off if it keeps crashing)
      rolling_restart(): new worker ready, then old one told to finish and exit
      stop() / SIGTERM: workers finish their request in flight, then exit; stragglers killed
                                                             │
    worker 1 ┐ each: loop { wait until the socket is readable; accept; handle ONE request
    worker 2 ├─      with the WSGI app; }  SIGTERM ─> finish the request, leave the loop
    worker N ┘       SIGINT ignored; exits by itself when the parent dies

Two ways to share a port between processes:

* **one shared socket** (the default, what gunicorn does): the parent binds and listens
  once; every worker gets the same socket and all ``accept`` from the same queue. Under
  fork (gunicorn) a worker *inherits* it; under spawn and forkserver (this server's
  default on macOS, Windows and Python 3.14+ on Linux) multiprocessing *passes* the
  descriptor to the new process, with the same result. A worker
  that is busy simply does not accept, so an idle one takes the next connection, and a
  worker that exits loses nothing that is still queued.
* **SO_REUSEPORT** (``reuse_port=True``, Linux and BSD): every worker binds its own socket
  to the same port and the kernel spreads new connections over them by a hash. Nothing
  is shared, but a connection can wait behind a busy worker while others are idle, and
  the connections queued on a worker's socket are reset when that worker exits.

Each worker serves one request at a time (like gunicorn's default "sync" worker), with
``wsgiref`` from the standard library: a slow client can hold one worker for at most
``request_timeout`` seconds; the others keep serving. Standard library only: the workers
import this module.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from helpers.core import config, validate, watchdog
from helpers.servers import demo_app
from helpers.servers.loadgen import LoadResult, check_loopback, load, start_load  # noqa: F401  (API)

#: A worker that dies sooner than this after starting counts as crash-looping.
MIN_UPTIME_SECONDS = 1.0
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
START_TIMEOUT_SECONDS = 30.0


# --- the worker side ---


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without a log line per request.

    A request line it cannot parse is answered with a status line and headers (as
    HTTP/1.0), not in HTTP/0.9's bare style, so every client sees the 400.
    """

    default_request_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _WorkerServer(WSGIServer):
    """wsgiref's server on a socket that is already bound (inherited or SO_REUSEPORT)."""

    def __init__(self, listener: socket.socket, app: Callable, timeout: float) -> None:
        handler = type("Handler", (_QuietHandler,), {"timeout": timeout})
        socketserver.BaseServer.__init__(self, listener.getsockname(), handler)
        self.socket = listener
        self.server_name, self.server_port = "localhost", listener.getsockname()[1]
        self.setup_environ()
        self.set_app(app)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up or timed out is not the worker's problem


def _listen_reuse_port(address: tuple[str, int], backlog: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen(backlog)
    return listener


def serve_worker(listener: socket.socket | None, address: tuple[str, int], app: Callable,
                 ready: multiprocessing.connection.Connection, request_timeout: float,
                 backlog: int, worker_init: Callable[[], Any] | None) -> None:
    """A worker process: accept and handle requests one at a time until SIGTERM."""
    watchdog.worker_setup()  # ignore Ctrl-C; exit when the parent dies
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    if worker_init is not None:
        worker_init()
    if listener is None:  # SO_REUSEPORT: a socket of our own on the same port
        listener = _listen_reuse_port(address, backlog)
    listener.setblocking(False)  # another worker may win the race to accept
    server = _WorkerServer(listener, app, request_timeout)
    ready.send(os.getpid())
    ready.close()
    while not stopping.is_set():
        readable, _, _ = select.select([listener], [], [], 0.2)
        if readable:
            server._handle_request_noblock()  # accept one connection, serve it, close it
    listener.close()


# --- the parent side ---


@dataclass(frozen=True)
class Event:
    """Something the supervisor saw or did, for the notebook's timelines."""

    seconds: float  # since the server started
    kind: str  # "started", "died", "replaced", "retired", "stopped"
    slot: int
    pid: int
    detail: str = ""


class PreforkServer:
    """N worker processes serving one WSGI app on one port, supervised by this process.

    Use it as a context manager (``with PreforkServer(app, workers=2) as server:``), or
    from a script with :meth:`serve_forever`, which stops gracefully on SIGTERM or Ctrl-C.
    """

    def __init__(self, app: Callable = demo_app.app, workers: int | None = None,
                 host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False,
                 start_method: str | None = None, request_timeout: float = 5.0,
                 grace_seconds: float = 10.0, backlog: int = 128,
                 worker_init: Callable[[], Any] | None = None,
                 allow_remote: bool = False) -> None:
        from helpers.core import machine

        workers = machine.usable_cpus() if workers is None else workers
        validate.whole_number("workers", workers, 1, validate.MAX_SERVER_WORKERS)
        if not callable(app):
            raise TypeError("app must be a WSGI application (a callable)")
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("SO_REUSEPORT is not available on this OS; use reuse_port=False")
        if not 0.1 <= request_timeout <= 300:
            raise ValueError(f"request_timeout must be 0.1 to 300 s, got {request_timeout!r}")
        check_loopback(host, allow_remote)
        self.app, self.workers, self.host, self.port = app, workers, host, port
        self.reuse_port, self.request_timeout = reuse_port, request_timeout
        self.grace_seconds, self.backlog, self.worker_init = grace_seconds, backlog, worker_init
        self.context = config.mp_context(start_method)
        self.events: list[Event] = []
        #: (slot, seconds) of every restart the supervisor scheduled, in order: the back-off
        #: as planned, which tests and timelines can read without timing anything.
        self.restart_delays: list[tuple[int, float]] = []
        self._slots: list[Any] = []
        self._retiring: set[int] = set()
        self._failures: list[int] = []
        self._restart_at: dict[int, float] = {}
        self._started_at: dict[int, float] = {}  # pid -> time.monotonic()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._listener: socket.socket | None = None
        self._supervisor: threading.Thread | None = None
        self._started = 0.0

    @property
    def socket_handover(self) -> str:
        """How workers get the listening socket: "inherited" (fork), "passed" or "own"."""
        if self.reuse_port:
            return "own"
        return "inherited" if self.context.get_start_method() == "fork" else "passed"

    # -- starting --

    def __enter__(self) -> PreforkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PreforkServer:
        """Bind the socket, start every worker and wait until each is ready."""
        if self._listener is not None:
            raise RuntimeError("this server is already started")
        self._started = time.monotonic()
        if self.reuse_port:  # bound (so the port is ours) but not listening: workers listen
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._listener.bind((self.host, self.port))
        else:
            self._listener = socket.create_server((self.host, self.port), backlog=self.backlog)
        self.address = self._listener.getsockname()[:2]
        self._slots = [None] * self.workers
        self._failures = [0] * self.workers
        try:
            for slot in range(self.workers):
                process = self._spawn(slot)
                if process is None:
                    raise RuntimeError(f"worker {slot} did not start: "
                                       f"{self.events[-1].detail}; see the worker's stderr")
                self._slots[slot] = process
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="prefork-supervisor",
                                            daemon=True)
        self._supervisor.start()
        return self

    def elapsed(self) -> float:
        """Seconds since the server started (the clock of :attr:`events`)."""
        return time.monotonic() - self._started

    def _spawn(self, slot: int) -> Any:
        """Start a worker for ``slot`` and wait for it to be ready; None if it failed."""
        ready_r, ready_w = self.context.Pipe(duplex=False)
        shared = None if self.reuse_port else self._listener
        process = self.context.Process(
            target=serve_worker, name=f"prefork-worker-{slot}", daemon=True,
            args=(shared, self.address, self.app, ready_w, self.request_timeout, self.backlog,
                  self.worker_init))
        process.start()
        ready_w.close()
        try:
            if multiprocessing.connection.wait([ready_r, process.sentinel],
                                               START_TIMEOUT_SECONDS) and ready_r.poll():
                ready_r.recv()
                self._started_at[process.pid] = time.monotonic()
                self.events.append(Event(self.elapsed(), "started", slot, process.pid))
                return process
        except EOFError:
            pass
        finally:
            ready_r.close()
        process.kill()
        process.join()
        self.events.append(Event(self.elapsed(), "failed to start", slot, process.pid,
                                 f"exit code {process.exitcode}"))
        return None

    # -- what it looks like --

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._slots if p is not None]

    def restarts(self) -> int:
        """Workers started to replace one that died."""
        return sum(e.kind == "replaced" for e in self.events)

    # -- supervising --

    def _wake(self) -> None:
        self._wake_w.send(b"")

    def _supervise(self) -> None:
        """Replace workers that die, with a growing delay for a worker that keeps crashing."""
        while not self._stopping.is_set():
            with self._lock:
                watched = {p.sentinel: (slot, p) for slot, p in enumerate(self._slots)
                           if p is not None}
                due = [slot for slot, when in self._restart_at.items()
                       if when <= time.monotonic()]
            for slot in due:
                self._restart(slot)
            timeout = 0.5
            if self._restart_at:
                timeout = max(0.0, min(self._restart_at.values()) - time.monotonic())
            ready = multiprocessing.connection.wait([*watched, self._wake_r], timeout)
            for handle in ready:
                if handle is self._wake_r:
                    self._wake_r.recv()
                    continue
                slot, process = watched[handle]
                process.join()
                self._on_death(slot, process)

    def _on_death(self, slot: int, process: Any) -> None:
        with self._lock:
            if self._slots[slot] is not process or process.pid in self._retiring:
                return  # already replaced by a rolling restart, or being stopped
            self._slots[slot] = None
            uptime = time.monotonic() - self._started_at.pop(process.pid, 0.0)
            self._failures[slot] = self._failures[slot] + 1 if uptime < MIN_UPTIME_SECONDS else 0
            delay = self._schedule_restart(slot)
        self.events.append(Event(self.elapsed(), "died", slot, process.pid,
                                 f"exit code {process.exitcode}; restart in {delay:.1f} s"))

    def _schedule_restart(self, slot: int) -> float:
        """Plan ``slot``'s restart (call with the lock held): at once after a worker that
        ran a while, else after a back-off that doubles with each quick failure."""
        failures = self._failures[slot]
        delay = 0.0
        if failures:
            delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (failures - 1))
        self._restart_at[slot] = time.monotonic() + delay
        self.restart_delays.append((slot, delay))
        return delay

    def _restart(self, slot: int) -> None:
        with self._lock:
            self._restart_at.pop(slot, None)
        if self._stopping.is_set():
            return
        process = self._spawn(slot)
        with self._lock:
            if process is None:  # it crashed while starting: try again later, slower
                self._failures[slot] += 1
                self._schedule_restart(slot)
                return
            self._slots[slot] = process
        self.events.append(Event(self.elapsed(), "replaced", slot, process.pid))

    # -- restarting and stopping --

    def rolling_restart(self) -> list[int]:
        """Replace every worker, one at a time, without dropping a request.

        For each worker: start its replacement and wait until it accepts, then tell the
        old one to finish its request and exit. Returns the new pids.
        """
        for slot in range(self.workers):
            if self._stopping.is_set():
                break
            with self._lock:
                old = self._slots[slot]
            new = self._spawn(slot)
            if new is None:
                raise RuntimeError(f"rolling restart stopped: a new worker for slot {slot} "
                                   "did not start; the old one keeps serving")
            with self._lock:
                self._slots[slot] = new
                if old is not None:
                    self._retiring.add(old.pid)
            self._wake()
            if old is not None:
                self._retire(slot, old)
        return self.pids

    def _retire(self, slot: int, process: Any) -> None:
        """SIGTERM: finish the request in flight and exit; SIGKILL after the grace period."""
        process.terminate()
        process.join(self.grace_seconds)
        if process.is_alive():
            process.kill()
            process.join()
        self.events.append(Event(self.elapsed(), "retired", slot, process.pid,
                                 f"exit code {process.exitcode}"))

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (within the grace period), stop."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._supervisor is not None:
            self._wake()
            self._supervisor.join()
        with self._lock:
            running = [(slot, p) for slot, p in enumerate(self._slots) if p is not None]
            self._retiring.update(p.pid for _, p in running)
        for _, process in running:
            process.terminate()
        deadline = time.monotonic() + self.grace_seconds
        for slot, process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            self.events.append(Event(self.elapsed(), "stopped", slot, process.pid,
                                     f"exit code {process.exitcode}"))
        if self._listener is not None:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def serve_forever(self) -> None:
        """For scripts: start, serve until SIGTERM or Ctrl-C, then stop gracefully."""
        finished = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda s, f: finished.set())
        with self:
            print(f"serving {self.url} with {self.workers} workers {self.pids}", flush=True)
            while not finished.wait(0.5):
                pass


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.servers.prefork [--workers N] [--port P]``: serve the demo app."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.servers.prefork",
                                     description=main.__doc__)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--grace", type=float, default=10.0)
    args = parser.parse_args(argv)
    PreforkServer(workers=args.workers, port=args.port, reuse_port=args.reuse_port,
                  grace_seconds=args.grace).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def explain_socket_handover(server: PreforkServer) -> str:
    """One sentence: how this server's workers came to share its port (Markdown)."""
    method = server.context.get_start_method()
    how = server.socket_handover
    if how == "own":
        return ("Each worker bound a socket of its own to the same port (`SO_REUSEPORT`): the "
                "kernel spread the connections over them.")
    if how == "inherited":
        return (f"The workers were started with **{method}**: each one is a copy of the "
                "parent and *inherited* its listening socket, as gunicorn's forked workers do.")
    return (f"The workers were started with **{method}**, so they are fresh processes, not "
            "copies: multiprocessing *passed* each of them the listening socket's descriptor "
            "(the socket object is pickled as a duplicated descriptor). Either way every worker "
            "holds the same socket, and all accept from one queue.")
