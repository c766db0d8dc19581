"""Shared fixtures. The important one: no test may leave a process behind.

On Linux the test process makes itself a *child subreaper*, so a grandchild that
loses its parent (a pool worker whose pool was killed) is re-parented to pytest
instead of to init, and shows up as our child. Each test compares pytest's
descendants before and after; the notebooks (run by nbval in a kernel) are checked
once more at the end of the session.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
import time

import psutil
import pytest

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 15.0  # a pool or server told to stop can take seconds to exit on a busy VM
#: multiprocessing's own helpers may live as long as the process that started them.
ALLOWED = ("multiprocessing.forkserver", "resource_tracker")


def _become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_become_subreaper()


def _live_descendants() -> dict[int, str]:
    """pid -> command line of every live descendant of this process, helpers excepted."""
    # A zombie that a multiprocessing.Process of ours still owns is left for its owner to
    # reap: taking its exit status here would leave that Process without an exitcode.
    owned = {process.pid for process in multiprocessing.active_children()}
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                if child.pid not in owned:
                    os.waitpid(child.pid, os.WNOHANG)  # reap orphans handed to us
                continue
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, ChildProcessError, psutil.AccessDenied):
            continue
        if not any(allowed in cmdline for allowed in ALLOWED):
            found[child.pid] = cmdline
    return found


def leftovers_after(before: set[int], grace: float = GRACE_SECONDS) -> dict[int, str]:
    """New descendants still alive after ``grace`` seconds; kills them before returning."""
    deadline = time.monotonic() + grace
    while True:
        new = {pid: cmd for pid, cmd in _live_descendants().items() if pid not in before}
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in new:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    return new


def pytest_collection_modifyitems(config, items):
    """nbval's items (one per notebook cell) carry the ``notebooks`` marker, so
    ``-m "not notebooks"`` leaves them out like the other notebook-running tests."""
    for item in items:
        if str(getattr(item, "path", "")).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebooks)


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """Fail a test that leaves behind a process it started."""
    before = set(_live_descendants())
    yield
    new = leftovers_after(before)
    if new:
        pytest.fail(f"the test left {len(new)} process(es) running: {new}", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Notebook kernels and what they started must be gone by the end of the run."""
    new = leftovers_after(set())
    if new:
        print(f"\nprocesses left running at the end of the session: {new}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def quick(monkeypatch):
    """Quick mode, as CI and live demos use."""
    monkeypatch.setenv("COURSE_QUICK", "1")


def _running(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie); a process that exits while it is
    being looked at is not running."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def still_alive(pids, seconds: float = 10.0) -> set[int]:
    """The pids among ``pids`` still running (not zombies) after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if _running(p)}
        time.sleep(0.05)
    return alive


def orphans_after_killing_parent(script: str, method: str, tmp_path) -> set[int]:
    """Run ``script`` (it prints its workers' pids), SIGKILL it, return workers still alive."""
    import subprocess

    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path), method], stdout=subprocess.PIPE,
                              text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) >= 1, "the parent script printed no worker pids"
        parent.kill()
        parent.wait(10)
        return still_alive(pids)
    finally:
        parent.kill()
        parent.wait()


#: How long a pool test waits for a result or an event before it fails, saying what.
RESULT_TIMEOUT = 60


def get(future):
    """A future's result, failing the test instead of hanging."""
    return future.result(timeout=RESULT_TIMEOUT)


def wait_until(condition, what: str, seconds: float = RESULT_TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail the test, saying ``what``, after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {seconds} s"
        time.sleep(0.01)
