"""gunicorn, started so that it never outlives the notebook that started it.

::

    GunicornServer(workers=2)          (the kernel)
      binds 127.0.0.1:<free port>, passes the socket as fd://N, keeps a pipe to stdin
      └─ python -m helpers.servers.gunicorn_run …   (gunicorn's master, the "arbiter")
           a thread reads stdin: EOF means the kernel is gone ─> SIGTERM to itself
           └─ N workers, forked by the master; they exit when the master does

gunicorn is a real dependency (Unix only); it runs the same WSGI app as the course's
pre-fork server (``helpers.servers.demo_app:app``). For asyncio apps, gunicorn runs ASGI
workers too (``-k uvicorn_worker.UvicornWorker``, from the uvicorn-worker package; the
older ``uvicorn.workers`` module is deprecated): notebook 06b runs them.
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

from helpers.core import paths, validate
from helpers.servers.loadgen import check_loopback

START_TIMEOUT_SECONDS = 30.0
#: gunicorn's ``--graceful-timeout`` unless told otherwise: after SIGTERM, how long a worker
#: may finish the requests it holds before the master kills it.
GRACEFUL_TIMEOUT_SECONDS = 5
#: The longest ``--timeout`` or ``--graceful-timeout`` the course's servers accept.
MAX_TIMEOUT_SECONDS = 3600


def available() -> str | None:
    """None if gunicorn can run here, else why not."""
    if sys.platform == "win32":
        return "gunicorn runs on Unix only (Linux, macOS); on Windows this part is skipped"
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return "gunicorn is not installed (pip install gunicorn)"
    return None


class GunicornServer:
    """``gunicorn -w N [--preload] APP`` on a loopback port, as a context manager."""

    def __init__(self, app: str = "helpers.servers.demo_app:app", workers: int = 2, *,
                 preload: bool = False, gc_freeze: bool = False, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None, timeout: int = 30,
                 graceful_timeout: int = GRACEFUL_TIMEOUT_SECONDS,
                 max_requests: int = 0, max_requests_jitter: int = 0) -> None:
        validate.whole_number("workers", workers, 1, validate.MAX_SERVER_WORKERS)
        validate.whole_number("timeout", timeout, 1, MAX_TIMEOUT_SECONDS)
        validate.whole_number("graceful_timeout", graceful_timeout, 0, MAX_TIMEOUT_SECONDS)
        self.graceful_timeout = graceful_timeout
        validate.whole_number("max_requests", max_requests, 0)
        validate.whole_number("max_requests_jitter", max_requests_jitter, 0)
        self.max_requests, self.max_requests_jitter = max_requests, max_requests_jitter
        check_loopback(host)
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        self.app, self.workers, self.preload, self.host = app, workers, preload, host
        self.env = {**os.environ, **(env or {}), "COURSE_GC_FREEZE": "1" if gc_freeze else "0"}
        self.timeout = timeout
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> GunicornServer:
        listener = socket.create_server((self.host, 0))
        self.address = listener.getsockname()[:2]
        fd = listener.fileno()
        command = [sys.executable, "-m", "helpers.servers.gunicorn_run", "--bind", f"fd://{fd}",
                   "--workers", str(self.workers), "--timeout", str(self.timeout),
                   "--graceful-timeout", str(self.graceful_timeout),
                   "--log-level", "warning",
                   "--max-requests", str(self.max_requests),
                   "--max-requests-jitter", str(self.max_requests_jitter),
                   *(["--preload"] if self.preload else []), self.app]
        self._process = subprocess.Popen(command, pass_fds=[fd], stdin=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=self.env, cwd=paths.REPO_ROOT)
        listener.close()  # gunicorn has its own copy
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"gunicorn exited with code {self._process.returncode}:\n"
                                   f"{error}")
            try:
                urllib.request.urlopen(self.url + "/whoami", timeout=2).read()
                if len(self.pids) == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"gunicorn did not answer within {START_TIMEOUT_SECONDS:.0f} s")

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def master_pid(self) -> int:
        return self._process.pid

    @property
    def pids(self) -> list[int]:
        """The worker processes (children of the master)."""
        import psutil

        try:
            return [c.pid for c in psutil.Process(self._process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self, grace_seconds: float | None = None) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL if it takes too long (by
        default 5 s longer than ``--graceful-timeout``, so that the master ends its workers)."""
        if self._process is None:
            return
        if grace_seconds is None:
            grace_seconds = self.graceful_timeout + 5.0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stderr):
            stream.close()
        self._process = None


def memory_per_worker(pids: list[int]) -> list[dict[str, float]]:
    """USS (memory only this process uses) and PSS (its fair share of shared pages), MiB."""
    import psutil

    rows = []
    for pid in pids:
        info: Any = psutil.Process(pid).memory_full_info()
        rows.append({"pid": pid, "uss_mib": info.uss / 2**20,
                     "pss_mib": getattr(info, "pss", float("nan")) / 2**20,
                     "rss_mib": info.rss / 2**20})
    return rows


def _exit_when_parent_dies() -> None:
    # os.read, not sys.stdin.buffer.read: a thread blocked inside sys.stdin holds its
    # buffer's lock, and every worker the master forks inherits that lock held, so a worker
    # that exits hangs closing its copy of stdin (until --graceful-timeout runs out and the
    # master SIGKILLs it), and the master itself aborts at exit ("could not acquire lock
    # for <stdin> at interpreter shutdown").
    while os.read(0, 4096):
        pass  # returns b"" at EOF: the process that started us is gone
    os.kill(os.getpid(), signal.SIGTERM)  # gunicorn's graceful stop
    time.sleep(10)
    os._exit(1)


def main() -> None:
    """``python -m helpers.servers.gunicorn_run [gunicorn arguments]``."""
    threading.Thread(target=_exit_when_parent_dies, name="exit-when-parent-dies",
                     daemon=True).start()
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
