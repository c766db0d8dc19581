"""WorkerPool leaves no process behind and never waits for ever on one.

A worker that will not exit when asked (its task ignores SIGTERM, or left a non-daemon
thread that keeps the interpreter from exiting) is killed after a grace period, by
``shutdown(wait=True)``, ``shutdown(wait=False)``, a dropped pool and the exit hook;
a worker that dies while a grandchild holds its pipes is still seen to die; and the
pool's finalisers (the weak reference's callback, a dropped ``map``) take no lock the
collecting thread may hold.

Every test runs under fork, forkserver and spawn. None asserts a time: the grace period
is shortened to a second, and each test allows a minute for what takes a few seconds.
"""

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from conftest import RESULT_TIMEOUT, get, still_alive, wait_until

from helpers.pool import WorkerCrashed, WorkerPool
from helpers.pool import threads as pool_threads
from helpers.pool.ledger import State
from helpers.tasks import faults

METHODS = [m for m in ("fork", "forkserver", "spawn")
           if m in multiprocessing.get_all_start_methods()]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses Unix signals and fork")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=METHODS)
def ctx(request):
    return multiprocessing.get_context(request.param)


@pytest.fixture
def short_grace(monkeypatch):
    """A one-second grace period: the receiver thread reads it from the module."""
    monkeypatch.setattr(pool_threads, "STOP_GRACE_SECONDS", 1.0, raising=False)


def finishes(call, pids, seconds: float = RESULT_TIMEOUT) -> bool:
    """Whether ``call()`` returns within ``seconds``. If it hangs, SIGKILL ``pids`` (the
    workers it waits for) so that it can return, and the test fails instead of hanging."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        thread.join(RESULT_TIMEOUT)
    return not hung


def stubborn_worker(pool: WorkerPool, how: str) -> int:
    """Make the pool's only worker refuse to exit when asked; return its pid."""
    if how == "ignores SIGTERM":
        return get(pool.submit(faults.ignore_sigterm))
    return get(pool.submit(faults.leave_a_thread_running, 600))


# --- item: no SIGKILL after an ignored SIGTERM or Stop ---


@pytest.mark.usefixtures("short_grace")
def test_terminate_workers_kills_a_worker_that_ignores_sigterm(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    pid = stubborn_worker(pool, "ignores SIGTERM")
    running = pool.submit(faults.spin_for, 600)
    wait_until(lambda: pool.status()[0].running_task is not None, "the task never started")
    pool.terminate_workers()
    assert running.exception(timeout=RESULT_TIMEOUT) is not None
    assert finishes(pool.shutdown, [pid]), "shutdown() waited for a worker that ignores SIGTERM"
    assert not still_alive([pid]), "the worker that ignored SIGTERM is still running"
    assert pool.state is State.TERMINATED


@pytest.mark.usefixtures("short_grace")
@pytest.mark.parametrize("how", ["ignores SIGTERM", "cannot exit"])
def test_shutdown_wait_kills_a_worker_that_does_not_exit_when_told(ctx, how):
    pool = WorkerPool(1, mp_context=ctx)
    pid = stubborn_worker(pool, how)
    assert get(pool.submit(abs, -3)) == 3  # it still works: it only will not exit
    assert finishes(pool.shutdown, [pid]), f"shutdown() waited for ever for a worker that {how}"
    assert not still_alive([pid])
    assert pool.state is State.CLOSED


@pytest.mark.usefixtures("short_grace")
def test_shutdown_without_waiting_still_reaps_a_worker_that_cannot_exit(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    pid = stubborn_worker(pool, "cannot exit")
    pool.shutdown(wait=False)
    try:
        assert not still_alive([pid], RESULT_TIMEOUT), "the worker was never killed"
        wait_until(lambda: pool.state is State.CLOSED, "the pool never closed")
    finally:
        finishes(pool.shutdown, [pid])


@pytest.mark.usefixtures("short_grace")
def test_a_dropped_pool_reaps_a_worker_that_cannot_exit(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    pid = stubborn_worker(pool, "cannot exit")
    receiver = pool._receiver
    del pool
    gc.collect()
    try:
        assert not still_alive([pid], RESULT_TIMEOUT), "the dropped pool's worker lives on"
    finally:
        finishes(lambda: receiver.join(), [pid])


EXIT_SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    from helpers.pool import WorkerPool, threads
    from helpers.tasks import faults

    if __name__ == "__main__":
        threads.STOP_GRACE_SECONDS = 1.0
        pool = WorkerPool(1, mp_context=multiprocessing.get_context(sys.argv[1]))
        print(pool.submit(faults.leave_a_thread_running, 600).result(), flush=True)
        pool.submit(abs, -1)  # pending work: the exit hook finishes it, then stops the worker
""")


def test_the_exit_hook_kills_a_worker_that_cannot_exit(ctx, tmp_path):
    """No shutdown() at all: the interpreter's exit must neither hang nor leave it running."""
    script = tmp_path / "leave_a_pool.py"
    script.write_text(EXIT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    program = subprocess.Popen([sys.executable, str(script), ctx.get_start_method()],
                               stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    pid = None
    try:
        pid = int(program.stdout.readline())
        try:
            program.wait(RESULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("the program hung at exit, waiting for a worker that cannot exit")
        assert program.returncode == 0
        assert not still_alive([pid]), "the worker outlived the program"
    finally:
        program.kill()
        program.wait()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)  # the test failed: leave nothing behind
            except ProcessLookupError:
                pass


# --- item: a worker whose pipes a grandchild holds open ---


def test_a_crash_is_seen_while_a_grandchild_holds_the_workers_pipes(ctx, tmp_path):
    if not hasattr(os, "pidfd_open") and ctx.get_start_method() != "forkserver":
        pytest.skip("without pidfd_open, only multiprocessing's forkserver sees this death")
    mark = tmp_path / "grandchild.pid"
    pool = WorkerPool(1, mp_context=ctx)
    try:
        crashing = pool.submit(faults.crash_leaving_a_grandchild, str(mark), 600)
        error = crashing.exception(timeout=RESULT_TIMEOUT)
        assert isinstance(error, WorkerCrashed), error
        assert error.exitcode == 3
        assert get(pool.submit(abs, -4)) == 4  # its replacement runs the next task
    finally:
        if mark.exists():
            grandchild = int(mark.read_text())
            try:
                os.kill(grandchild, signal.SIGKILL)
            except ProcessLookupError:
                pass
            still_alive([grandchild])
        pool.shutdown()


# --- item: finalisers take no lock the collecting thread may hold ---


class NoReentry:
    """A lock that fails, instead of hanging, when the thread holding it takes it again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = None

    def __enter__(self):
        if self._owner == threading.get_ident():
            raise AssertionError("took a lock its own thread already holds: a self-deadlock")
        self._lock.acquire()
        self._owner = threading.get_ident()
        return self

    def __exit__(self, *exc) -> bool:
        self._owner = None
        self._lock.release()
        return False


def test_the_weakref_callback_takes_no_lock_its_thread_may_hold():
    """The garbage collector runs the callback on whatever thread collects the pool, at
    any allocation, including one made inside ``Wakeup.wake()`` under its lock."""
    pool = WorkerPool(1)
    try:
        pool._wakeup._lock = NoReentry()
        ref = pool._receiver.pool_ref
        with pool._wakeup._lock:
            ref.__callback__(ref)  # what the collector does if the pool dies right here
        assert get(pool.submit(abs, -5)) == 5
    finally:
        pool.shutdown()


DROPPED_MAP_SCRIPT = textwrap.dedent("""
    import concurrent.futures, multiprocessing, sys
    from helpers.pool import WorkerPool
    from helpers.tasks import faults

    if __name__ == "__main__":
        pool = WorkerPool(1, mp_context=multiprocessing.get_context(sys.argv[1]))
        results = pool.map(faults.sleep_for, [600, 600])
        futures = [future for future, _ in results.in_flight]
        with pool._ledger.lock:  # as the collector may: finalise the map under the lock
            results.__del__()
        concurrent.futures.wait(futures, timeout=60)
        print("cancelled" if all(f.cancelled() for f in futures) else "still running",
              flush=True)
        pool.shutdown()
""")


def test_a_map_finalised_under_the_pools_lock_does_not_deadlock(ctx, tmp_path):
    """A dropped map in a reference cycle is finalised by the cyclic collector, which may
    run on the receiver thread while it holds the ledger's lock. Run in a program of its
    own: a deadlock there is a timeout here."""
    script = tmp_path / "drop_a_map.py"
    script.write_text(DROPPED_MAP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run([sys.executable, str(script), ctx.get_start_method()],
                              capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=RESULT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("finalising a map under the pool's lock deadlocked")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cancelled", done.stderr
