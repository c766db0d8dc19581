"""ASGI servers for notebook 06b, started so that they never outlive the kernel.

::

    UvicornServer(workers=N) / GunicornASGIServer(workers=N) / GunicornSync(...)   (kernel)
      binds 127.0.0.1:<free port>, passes the socket's descriptor, keeps a pipe to stdin
      └─ python -m helpers.servers.web_run uvicorn …     or  … gunicorn_run …
           a thread reads stdin: EOF means the kernel is gone ─> SIGTERM to itself
           └─ uvicorn: one process, or N spawned workers (``--workers N``) that exit
              with their supervisor; gunicorn: N forked workers (``-k
              uvicorn_worker.UvicornWorker`` for ASGI, the default sync worker for WSGI)

``uvicorn --workers N`` and gunicorn both share ONE listening socket among their workers
(the kernel's accept queue). The socket is bound here, before the server starts, so the
port is free and known without a race. Unix only for gunicorn; uvicorn runs everywhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from helpers.core import machine, paths, validate
from helpers.servers import gunicorn_run
from helpers.servers.loadgen import check_loopback

APP = "helpers.servers.web_app:app"
START_TIMEOUT_SECONDS = 60.0


def available() -> str | None:
    """None if FastAPI and uvicorn can run here, else why not. (The servers here are handed
    an inherited listening socket, which needs Unix: on Windows this says so, and the
    notebook's servers raise that reason instead of starting.)"""
    if sys.platform == "win32":
        return ("these servers are started on an inherited socket, which needs Unix "
                "(Linux or macOS); on Windows run `uvicorn helpers.servers.web_app:app` "
                "yourself")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install fastapi uvicorn)"
    return None


def gunicorn_available() -> str | None:
    """None if gunicorn with the uvicorn-worker package can run here, else why not."""
    reason = gunicorn_run.available() or available()
    if reason:
        return reason
    try:
        import uvicorn_worker  # noqa: F401
    except ImportError:
        return "uvicorn-worker is not installed (pip install uvicorn-worker)"
    return None


def default_workers() -> int:
    """``WEB_CONCURRENCY`` when set (uvicorn and gunicorn read it too), else usable CPUs."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else machine.usable_cpus()


class _Served:
    """A server process on a loopback socket bound here; a context manager."""

    kind = "server"

    def __init__(self, workers: int | None, env: dict[str, str] | None, host: str) -> None:
        workers = default_workers() if workers is None else workers
        validate.whole_number("workers", workers, 1, validate.MAX_SERVER_WORKERS)
        check_loopback(host)
        self.workers, self.host = workers, host
        self.env = {**os.environ, "WEB_POOL_WORKERS": "0", **(env or {})}
        self._process: subprocess.Popen | None = None
        self._stderr_lines: list[str] = []
        self._stderr_thread: threading.Thread | None = None

    def command(self, fd: int) -> list[str]:
        raise NotImplementedError

    def __enter__(self) -> _Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> _Served:
        listener = socket.create_server((self.host, 0), backlog=1024)
        self.address = listener.getsockname()[:2]
        fd = listener.fileno()
        self._process = subprocess.Popen(self.command(fd), pass_fds=[fd], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         env=self.env, cwd=paths.REPO_ROOT)
        listener.close()  # the server has its own copy
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True,
                                               name=f"{self.kind}-stderr")
        self._stderr_thread.start()
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_stderr(self) -> None:
        for line in iter(self._process.stderr.readline, b""):
            self._stderr_lines.append(line.decode(errors="replace").rstrip())

    @property
    def log(self) -> list[str]:
        """What the server wrote to stderr so far (warnings and errors)."""
        return list(self._stderr_lines)

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"{self.kind} exited with code {self._process.returncode}:"
                                   "\n" + "\n".join(self._stderr_lines[-30:]))
            try:
                urllib.request.urlopen(self.url + "/whoami", timeout=2).read()
                if len(self.pids) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} did not answer within {START_TIMEOUT_SECONDS:.0f} s")

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def master_pid(self) -> int:
        return self._process.pid

    @property
    def pids(self) -> list[int]:
        """The worker processes serving requests (not the pool's processes, if any)."""
        import psutil

        try:
            master = psutil.Process(self._process.pid)
            children = master.children()
        except psutil.NoSuchProcess:
            return []
        if self.workers == 1 and self.kind == "uvicorn":
            return [master.pid]
        # uvicorn's supervisor also runs multiprocessing's resource tracker: leave it out
        return [c.pid for c in children if "resource_tracker" not in " ".join(_cmdline(c))]

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM (a graceful stop: in-flight requests finish), then SIGKILL."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stdin.close()
        if self._stderr_thread is not None:
            self._stderr_thread.join(2)
        self._process.stderr.close()
        self._process = None


def _cmdline(process: Any) -> list[str]:
    try:
        return process.cmdline()
    except Exception:
        return []


class UvicornServer(_Served):
    """``uvicorn APP --workers N`` (N=1: one process) on a loopback socket."""

    kind = "uvicorn"

    def __init__(self, app: str = APP, workers: int | None = 1, *,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        super().__init__(workers, env, host)
        self.app = app

    def command(self, fd: int) -> list[str]:
        return [sys.executable, "-m", "helpers.servers.web_run", "uvicorn", "--fd", str(fd),
                "--workers", str(self.workers), self.app]


class GunicornServer(_Served):
    """gunicorn on a loopback socket: ``-k uvicorn_worker.UvicornWorker`` (ASGI) by default,
    or ``worker_class="sync"`` with a WSGI app; ``timeout``, ``max_requests`` and jitter
    are gunicorn's own settings."""

    kind = "gunicorn"

    def __init__(self, app: str = APP, workers: int | None = None, *,
                 worker_class: str = "uvicorn_worker.UvicornWorker", timeout: int = 30,
                 graceful_timeout: int = gunicorn_run.GRACEFUL_TIMEOUT_SECONDS,
                 max_requests: int = 0, max_requests_jitter: int = 0, threads: int = 1,
                 preload: bool = False, env: dict[str, str] | None = None,
                 host: str = "127.0.0.1") -> None:
        validate.whole_number("timeout", timeout, 1, gunicorn_run.MAX_TIMEOUT_SECONDS)
        validate.whole_number("graceful_timeout", graceful_timeout, 0,
                              gunicorn_run.MAX_TIMEOUT_SECONDS)
        validate.whole_number("max_requests", max_requests, 0)
        validate.whole_number("max_requests_jitter", max_requests_jitter, 0)
        validate.whole_number("threads", threads, 1, validate.MAX_SERVER_WORKERS)
        if not isinstance(preload, bool):
            raise ValueError(f"preload must be True or False, got {preload!r}")
        reason = gunicorn_available() if "uvicorn" in worker_class else gunicorn_run.available()
        if reason is not None:
            raise RuntimeError(reason)
        super().__init__(workers, env, host)
        self.app, self.worker_class, self.timeout = app, worker_class, timeout
        self.graceful_timeout, self.preload = graceful_timeout, preload
        self.max_requests, self.max_requests_jitter = max_requests, max_requests_jitter
        self.threads = threads

    def command(self, fd: int) -> list[str]:
        return [sys.executable, "-m", "helpers.servers.gunicorn_run", "--bind", f"fd://{fd}",
                "--workers", str(self.workers), "-k", self.worker_class,
                "--threads", str(self.threads), "--timeout", str(self.timeout),
                "--graceful-timeout", str(self.graceful_timeout), "--log-level", "warning",
                "--max-requests", str(self.max_requests),
                "--max-requests-jitter", str(self.max_requests_jitter),
                *(["--preload"] if self.preload else []), self.app]

    def stop(self, grace_seconds: float | None = None) -> None:
        """SIGTERM, then SIGKILL if the master has not exited ``grace_seconds`` later (by
        default 5 s after its own ``--graceful-timeout``, so that the master, not we, ends
        its workers)."""
        if grace_seconds is None:
            grace_seconds = self.graceful_timeout + 5.0
        super().stop(grace_seconds)

    def signal_master(self, signum: int) -> float:
        """Send ``signum`` to gunicorn's master (SIGTERM: graceful stop; SIGHUP: reload);
        returns the ``time.perf_counter()`` at which it was sent."""
        sent = time.perf_counter()
        self._process.send_signal(signum)
        return sent

    def wait_exit(self, seconds: float) -> int | None:
        """The master's exit code, or None if it is still running after ``seconds``."""
        try:
            return self._process.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def wait_for_new_workers(self, old: list[int], seconds: float = 15.0) -> list[int]:
        """After a HUP: wait until ``workers`` processes run and none of ``old`` is among
        them; returns the new pids (fewer, or some old, if ``seconds`` ran out)."""
        deadline = time.monotonic() + seconds
        while True:
            pids = self.pids
            if (len(pids) == self.workers and not set(pids) & set(old)) or \
                    time.monotonic() > deadline:
                return pids
            time.sleep(0.05)

    def timeouts(self) -> int:
        """How many times the master logged ``WORKER TIMEOUT`` (it killed a worker)."""
        return sum("WORKER TIMEOUT" in line for line in self._stderr_lines)


def _exit_when_parent_dies() -> None:
    # os.read, not sys.stdin.read: a thread blocked inside sys.stdin holds its buffer's
    # lock, and a pool worker forked meanwhile would deadlock closing its copy of stdin.
    while os.read(0, 4096):
        pass  # returns b"" at EOF: the process that started us is gone
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful stop
    time.sleep(10)
    os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """``python -m helpers.servers.web_run uvicorn --fd N --workers W APP``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m helpers.servers.web_run")
    parser.add_argument("server", choices=["uvicorn"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("app")
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_when_parent_dies, name="exit-when-parent-dies",
                     daemon=True).start()
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    listener = socket.socket(fileno=args.fd)  # family and type read from the descriptor
    config = uvicorn.Config(args.app, workers=args.workers, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=5)
    if args.workers > 1:
        Multiprocess(config, sockets=[listener]).run()
    else:
        uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
