"""WorkerPool: the concurrent.futures contract, the extensions, and the faults it survives.

Every test runs under fork and spawn (spawn is what macOS, Windows and, as
forkserver, Python 3.14 use).
"""

import asyncio
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from concurrent.futures import (
    CancelledError,
    as_completed,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import psutil
import pytest
from conftest import RESULT_TIMEOUT, get, orphans_after_killing_parent, still_alive, wait_until

from helpers.core import workloads
from helpers.pool import (
    PoolTerminated,
    TaskTimeout,
    WorkerCrashed,
    WorkerInitError,
    WorkerPool,
    parent,
    threads,
    worker_process,
)
from helpers.pool.parent import RemoteTraceback
from helpers.tasks import faults

REPO = Path(__file__).resolve().parent.parent
METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture(params=METHODS)
def ctx(request):
    return multiprocessing.get_context(request.param)


@pytest.fixture
def pool(ctx):
    with WorkerPool(2, mp_context=ctx) as pool:
        yield pool


# --- the Executor contract ---


def test_submit_and_map(pool):
    assert get(pool.submit(pow, 2, 10)) == 1024
    assert get(pool.submit(divmod, 7, 2)) == (3, 1)
    assert get(pool.submit(int, "ff", base=16)) == 255
    assert list(pool.map(pow, range(20), itertools.repeat(2))) == [i * i for i in range(20)]
    assert list(pool.map(pow, range(50), [2] * 50, chunksize=7)) == [i * i for i in range(50)]
    assert list(pool.map(abs, range(-500, 500), chunksize="auto")) == [abs(i) for i in
                                                                      range(-500, 500)]
    assert list(pool.map(abs, [])) == []


def test_futures_work_with_the_standard_helpers(pool):
    futures = [pool.submit(faults.sleep_for, 0.01 * i) for i in range(6)]
    done, not_done = wait(futures, timeout=RESULT_TIMEOUT)
    assert len(done) == 6 and not not_done
    assert sorted(f.result() for f in as_completed(futures)) == [0.01 * i for i in range(6)]


def test_futures_work_with_asyncio(pool):
    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(pool, pow, 3, 3)
        b = await asyncio.wrap_future(pool.submit(pow, 2, 5))
        return a, b

    assert asyncio.run(main()) == (27, 32)


def test_exceptions_come_back_with_the_remote_traceback(pool):
    future = pool.submit(faults.raise_error, "boom")
    with pytest.raises(ValueError, match="boom") as info:
        get(future)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_error" in str(cause) and "faults.py" in str(cause)
    assert get(pool.submit(pow, 2, 2)) == 4  # the pool goes on


def test_map_raises_at_the_failing_item(pool):
    results = pool.map(abs, [1, -2, "x", 4])
    assert next(results) == 1 and next(results) == 2
    with pytest.raises(TypeError):
        next(results)


def test_map_timeout(pool):
    with pytest.raises(TimeoutError):
        list(pool.map(faults.sleep_for, [1, 1], timeout=0.2))


@pytest.mark.parametrize("arguments", [
    {"max_workers": 0}, {"max_workers": -1}, {"max_workers": 1.5},
    {"max_tasks_per_child": 0}, {"max_pending": 0}, {"task_timeout": -1},
    {"task_timeout": "soon"},
])
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        WorkerPool(**arguments)


def test_initializer_must_be_callable():
    with pytest.raises(TypeError, match="initializer must be a callable"):
        WorkerPool(1, initializer=42)


@pytest.mark.parametrize("chunksize", [0, -1, "big", True, 1.5])
def test_bad_chunksize_is_refused(pool, chunksize):
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(abs, [1], chunksize=chunksize)


def test_nothing_can_be_submitted_after_shutdown(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pow, 2, 2)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.map(abs, [1])


def test_shutdown_finishes_pending_work(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    futures = [pool.submit(faults.sleep_for, 0.05) for _ in range(4)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.result() == 0.05 for f in futures)


def test_shutdown_can_cancel_pending_work(ctx):
    pool = WorkerPool(1, mp_context=ctx)
    futures = [pool.submit(faults.sleep_for, 0.3) for _ in range(6)]
    wait_until(futures[0].running, "the first task was never sent to the worker")
    pool.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in futures)
    assert futures[0].result() == 0.3
    assert any(f.cancelled() for f in futures)


def test_shutdown_without_waiting_still_stops_the_workers(ctx):
    pool = WorkerPool(2, mp_context=ctx)
    pids = pool.worker_pids()
    future = pool.submit(faults.sleep_for, 0.2)
    pool.shutdown(wait=False)
    assert get(future) == 0.2
    assert still_alive(pids) == set()
    pool.shutdown(wait=True)
    assert not any(psutil.pid_exists(p) for p in pids)


# --- the extensions ---


def test_map_is_lazy_and_bounded(pool):
    pulled = itertools.count()

    def numbers():
        for i in itertools.count():
            next(pulled)
            yield i

    results = pool.map(abs, numbers(), chunksize=1)
    assert [next(results) for _ in range(100)] == list(range(100))
    in_flight_bound = 4 * pool.max_workers
    assert next(pulled) <= 100 + in_flight_bound + 1
    results.close()


def test_map_auto_chunks_grow_for_tiny_tasks(pool):
    n = 200_000
    assert sum(pool.map(workloads.noop, range(n), chunksize="auto")) == sum(range(n))
    records = pool.trace()
    assert len(records) < n / 50, "tiny tasks should travel in large chunks"


def test_map_auto_keeps_coarse_tasks_single(pool):
    list(pool.map(faults.sleep_for, [0.05] * 8, chunksize="auto"))
    assert len(pool.trace()) == 8


def test_max_pending_blocks_submit(ctx):
    """The third submit returns only once a task has finished (seen from the futures the
    moment it returns, not by sleeping and counting)."""
    with WorkerPool(1, mp_context=ctx, max_pending=2) as pool:
        submitted = []
        done_when_third_returned = []

        def producer():
            for _ in range(3):
                submitted.append(pool.submit(faults.sleep_for, 0.3))
            done_when_third_returned.extend(f.done() for f in submitted[:2])

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join(timeout=RESULT_TIMEOUT)
        assert len(submitted) == 3
        assert any(done_when_third_returned), "the third submit did not wait for room"
        assert [get(f) for f in submitted] == [0.3] * 3


def test_task_timeout_kills_and_replaces_the_worker(ctx):
    # 3 s, not less: the clock runs from when the task is sent, and the replacement that
    # runs `after` is a new process (a spawn worker can take a second to start when busy).
    with WorkerPool(1, mp_context=ctx, task_timeout=3) as pool:
        first = pool.worker_pids()
        stuck = pool.submit(faults.spin_for, 60)
        after = pool.submit(pow, 2, 3)
        with pytest.raises(TaskTimeout, match="task_timeout=3") as info:
            get(stuck)
        assert isinstance(info.value, TimeoutError)
        assert get(after) == 8
        assert pool.worker_pids() != first
        assert not psutil.pid_exists(first[0])


def test_max_tasks_per_child_recycles_workers(ctx):
    with WorkerPool(1, mp_context=ctx, max_tasks_per_child=2) as pool:
        pids = [get(pool.submit(faults.worker_pid)) for _ in range(6)]
        assert len(set(pids)) == 3
        pids = list(pool.map(faults.worker_pid, range(8)))
        assert len(set(pids)) >= 4


def test_initializer_runs_in_every_worker(ctx):
    with WorkerPool(1, mp_context=ctx, initializer=faults.counting_initializer,
                    initargs=(100,)) as pool:
        assert [get(pool.submit(faults.bump_counter))[1] for _ in range(3)] == [101, 102, 103]


def test_trace_records_every_task(pool):
    start = time.perf_counter()
    futures = [pool.submit(faults.sleep_for, 0.02) for _ in range(6)]
    wait(futures)
    records = pool.trace()
    assert sorted(r.task_id for r in records) == list(range(6))
    for r in records:
        assert start <= r.submitted <= r.started + 0.001 and r.started < r.finished
        assert r.worker.startswith("pid ")
    assert len({r.worker for r in records}) <= 2
    assert pool.trace(clear=True) and pool.trace() == []


# --- a worker's brief spin before it sleeps ---


def test_a_worker_spins_until_a_message_waits_or_its_time_is_up():
    parent_end, worker_end = multiprocessing.Pipe()  # duplex, as the pool's pipes are
    try:
        has_message = worker_process.message_check(worker_end)
        assert not has_message()
        start = time.perf_counter()
        worker_process.spin_briefly(has_message, 0.05)
        assert time.perf_counter() - start >= 0.05  # it used all its time
        parent_end.send_bytes(b"a task")
        start = time.perf_counter()
        worker_process.spin_briefly(has_message, 30.0)
        assert time.perf_counter() - start < 5.0  # it stopped at once: a message waits
        assert worker_end.recv_bytes() == b"a task"  # the spin read nothing
        parent_end.close()
        assert has_message()  # a closed pipe ends the spin too, and the read then ends
        with pytest.raises(EOFError):
            worker_end.recv_bytes()
    finally:
        parent_end.close()
        worker_end.close()


def test_idle_workers_stop_spinning(ctx):
    with WorkerPool(2, mp_context=ctx) as pool:
        workers = [psutil.Process(pid) for pid in pool.worker_pids()]
        for i in range(50):
            assert pool.submit(workloads.noop, i).result(timeout=RESULT_TIMEOUT) == i
        time.sleep(0.2)
        before = [sum(w.cpu_times()[:2]) for w in workers]
        time.sleep(1.0)
        after = [sum(w.cpu_times()[:2]) for w in workers]
    # A worker that kept spinning would have used about a second of CPU.
    assert all(b - a < 0.1 for a, b in zip(before, after, strict=True)), (before, after)


def test_the_pool_turns_the_spin_off_where_it_may_keep_one_cpu_busy(monkeypatch):
    from helpers.core import machine

    monkeypatch.setattr(machine, "usable_cpus", lambda: 1)
    assert parent.idle_spin_seconds() == 0.0
    monkeypatch.setattr(machine, "usable_cpus", lambda: 2)
    assert parent.idle_spin_seconds() == worker_process.IDLE_SPIN_SECONDS > 0


def _exit_to_show_it_spun(*args):
    os._exit(71)


@pytest.mark.skipif("fork" not in METHODS, reason="needs the fork start method")
@pytest.mark.parametrize("spins", [False, True])
def test_a_worker_spins_after_a_batch_only_when_the_pool_says_so(monkeypatch, spins):
    """Forked workers inherit the stand-in for ``spin_briefly``, which ends the process:
    a worker that spins after its task exits (nothing else would end it)."""
    monkeypatch.setattr(parent, "idle_spin_seconds", lambda: 0.001 if spins else 0.0)
    monkeypatch.setattr(worker_process, "spin_briefly", _exit_to_show_it_spun)
    with WorkerPool(1, mp_context=multiprocessing.get_context("fork")) as pool:
        pid = pool.worker_pids()[0]
        assert pool.submit(workloads.noop, 7).result(timeout=RESULT_TIMEOUT) == 7
        if spins:
            assert not still_alive([pid])
        else:
            assert still_alive([pid], seconds=0.5) == {pid}  # waiting for its next task


# --- faults ---


def test_a_worker_that_exits_fails_only_its_task(pool):
    crash = pool.submit(faults.exit_abruptly, 3)
    others = [pool.submit(pow, i, 2) for i in range(10)]
    with pytest.raises(WorkerCrashed, match="exited with code 3") as info:
        get(crash)
    assert isinstance(info.value, BrokenProcessPool)
    assert [get(f) for f in others] == [i * i for i in range(10)]
    assert get(pool.submit(pow, 3, 2)) == 9
    assert len(pool.worker_pids()) == 2


@pytest.mark.parametrize(("task", "signal_name"), [
    (faults.segfault, "SIGSEGV"),
    (faults.kill_self, "SIGKILL"),
])
def test_a_worker_killed_by_a_signal_fails_only_its_task(pool, task, signal_name):
    crash = pool.submit(task)
    with pytest.raises(WorkerCrashed, match=signal_name):
        get(crash)
    assert list(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]


def test_sigkill_from_outside(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        [pid] = pool.worker_pids()
        running = pool.submit(faults.sleep_for, 30)
        wait_until(lambda: pool.status()[0].running_task is not None,
                   "the task never started in the worker")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match=f"pid {pid} was killed by signal SIGKILL"):
            get(running)
        assert get(pool.submit(pow, 2, 2)) == 4


@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are Unix-only")
def test_a_memory_limit_does_not_break_the_pool(pool):
    future = pool.submit(faults.exceed_memory, 100, 400)
    with pytest.raises((MemoryError, WorkerCrashed)):
        get(future)
    assert get(pool.submit(pow, 5, 2)) == 25


def test_an_unpicklable_argument_fails_only_its_task(pool):
    futures = [pool.submit(abs, -1), pool.submit(id, threading.Lock()), pool.submit(abs, -3)]
    assert get(futures[0]) == 1 and get(futures[2]) == 3
    with pytest.raises(TypeError, match="cannot pickle") as raised:  # pickle's own error
        get(futures[1])
    assert "to send it to a worker" in "".join(raised.value.__notes__)


def test_an_unpicklable_result_or_exception_fails_only_its_task(pool):
    bad_result = pool.submit(faults.return_unpicklable)
    bad_error = pool.submit(faults.raise_unpicklable)
    good = pool.submit(abs, -5)
    with pytest.raises(TypeError, match="cannot pickle") as raised:  # pickle's own error
        get(bad_result)
    assert "to send it back" in "".join(raised.value.__notes__)
    with pytest.raises(RuntimeError, match="could not be pickled"):
        get(bad_error)
    assert get(good) == 5


def test_a_function_the_worker_cannot_import_fails_only_its_task():
    """Like a function defined in a notebook, sent to spawn workers."""
    module = types.ModuleType("made_in_the_parent_only")
    exec("def double(x):\n    return 2 * x\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        with WorkerPool(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(abs, -1), pool.submit(module.double, 2),
                       pool.submit(abs, -3)]
            with pytest.raises(BrokenProcessPool, match="could not be unpickled in the worker"):
                get(futures[1])
            assert get(futures[0]) == 1 and get(futures[2]) == 3
    finally:
        del sys.modules[module.__name__]


def test_a_failing_initializer_fails_futures_instead_of_hanging(ctx):
    pool = WorkerPool(2, mp_context=ctx, initializer=faults.failing_initializer,
                      initargs=(0.5,))
    futures = [pool.submit(pow, 2, i) for i in range(5)]  # before the initializer fails
    for future in futures:
        with pytest.raises(WorkerInitError, match="initializer raised") as info:
            get(future)
        assert isinstance(info.value, BrokenProcessPool)
    with pytest.raises(BrokenProcessPool):
        pool.submit(pow, 2, 2)
    pool.shutdown()


def test_a_failing_initializer_breaks_the_pool_once_its_worker_has_exited(ctx, tmp_path):
    """What the worker did on its way out (flushing a log queue) is done by then."""
    mark = tmp_path / "mark"
    pool = WorkerPool(1, mp_context=ctx, initializer=faults.failing_initializer_leaving_a_mark,
                      initargs=(str(mark), 0.5))
    with pytest.raises(WorkerInitError):
        get(pool.submit(pow, 2, 3))
    assert mark.exists(), "the pool reported the failure before its worker had exited"
    pool.shutdown()


def test_workers_that_die_before_they_are_set_up_break_the_pool_instead_of_looping(ctx):
    """Found by a session: an initializer that ends the process had the pool start
    (and lose) hundreds of workers a second, and the caller waited for ever."""
    pool = WorkerPool(2, mp_context=ctx, initializer=faults.exit_abruptly, initargs=(4,))
    futures = [pool.submit(pow, 2, i) for i in range(3)]
    for future in futures:
        with pytest.raises(BrokenProcessPool, match=r"workers in a row exited before they "
                                                    r"were set up .*exit code 4"):
            get(future)
    with pytest.raises(BrokenProcessPool):
        pool.submit(pow, 2, 2)
    assert pool.stats().workers_replaced <= threads.MAX_FAILED_STARTS
    pool.shutdown()


@pytest.mark.skipif("spawn" not in METHODS, reason="needs the spawn start method")
def test_a_script_from_stdin_under_spawn_gets_an_error_not_a_hang():
    """A spawned worker imports the main module again, which a script read from standard
    input does not have: the caller gets BrokenProcessPool, with the workers' traceback
    on stderr, as under ProcessPoolExecutor."""
    script = textwrap.dedent("""
        import multiprocessing
        from helpers.pool import WorkerPool
        with WorkerPool(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                pool.submit(abs, -1).result(timeout=60)
            except Exception as error:
                print(type(error).__name__, error)
    """)
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True,
                          text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.startswith("BrokenProcessPool"), done.stdout + done.stderr
    assert "exited before they were set up" in done.stdout
    assert "<stdin>" in done.stderr  # the worker's own error, where the learner can read it


def test_workers_ignore_sigint(pool):
    pids = pool.worker_pids()
    wait_until(lambda: set(pool.map(faults.worker_pid, range(20))) == set(pids),
               "both workers never ran a task")
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    assert list(pool.map(abs, [-1, -2, -3, -4])) == [1, 2, 3, 4]
    assert pool.worker_pids() == pids


def test_an_interrupted_with_block_cancels_and_leaves_nothing(ctx):
    futures = []
    with pytest.raises(KeyboardInterrupt):
        with WorkerPool(2, mp_context=ctx) as pool:
            pids = pool.worker_pids()
            futures = [pool.submit(faults.sleep_for, 5) for _ in range(6)]
            time.sleep(0.3)
            raise KeyboardInterrupt
    assert all(f.done() for f in futures)
    for future in futures:
        if not future.cancelled():
            with pytest.raises(PoolTerminated):
                future.result()
    assert not any(psutil.pid_exists(p) for p in pids)


def test_every_task_ends_resolved_whatever_happens(ctx):
    """A mixed storm: crashes, timeouts, errors, recycling. Nothing may stay pending."""
    tasks = [(pow, 2, 3), (faults.exit_abruptly, 1), (faults.raise_error,), (faults.sleep_for, 5),
             (abs, -4), (faults.segfault,), (id, threading.Lock())]
    # task_timeout counts from when a task is sent, so it must leave room for a new
    # spawn worker to start (recycling and crashes start many): 3 s, not 1.
    with WorkerPool(2, mp_context=ctx, task_timeout=3.0, max_tasks_per_child=3) as pool:
        futures = [pool.submit(*task) for task in tasks * 2]  # two timeouts, about at once
        done, not_done = wait(futures, timeout=RESULT_TIMEOUT)
        assert not not_done
        assert [f.result() for f in futures[0::len(tasks)]] == [8, 8]


PARENT_SCRIPT = textwrap.dedent("""
    import multiprocessing, sys, time
    from helpers.pool import WorkerPool
    from helpers.tasks import faults
    if __name__ == "__main__":
        pool = WorkerPool(2, mp_context=multiprocessing.get_context(sys.argv[1]))
        pool.submit(faults.sleep_for, 60)
        print(*pool.worker_pids(), flush=True)
        time.sleep(120)
""")


@pytest.mark.parametrize("method", METHODS)
def test_workers_exit_when_the_parent_is_killed(tmp_path, method):
    assert orphans_after_killing_parent(PARENT_SCRIPT, method, tmp_path) == set()


def test_default_worker_count_is_the_usable_cpus():
    from helpers.core import machine

    with WorkerPool() as pool:
        assert pool.max_workers == machine.usable_cpus()


def test_cancelled_before_start_is_never_run(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        blocker = pool.submit(faults.sleep_for, 0.5)
        queued = [pool.submit(faults.sleep_for, 0.01) for _ in range(5)]
        cancelled = [f for f in queued if f.cancel()]
        assert get(blocker) == 0.5
        assert all(f.cancelled() for f in cancelled)
        for future in cancelled:
            with pytest.raises(CancelledError):
                future.result()


def test_it_is_an_executor():
    from concurrent.futures import Executor

    assert issubclass(WorkerPool, Executor)


@pytest.mark.parametrize("stop", ["shutdown-cancel", "terminate"])
def test_stopping_mid_storm_resolves_every_task(ctx, stop):
    """Crashes re-queue tasks while the pool is being stopped: still nothing stays pending."""
    pool = WorkerPool(2, mp_context=ctx)
    tasks = [(faults.sleep_for, 0.05), (faults.exit_abruptly, 1), (abs, -1)] * 10
    futures = [pool.submit(*task) for task in tasks]
    time.sleep(0.2)
    if stop == "terminate":
        pool.terminate()
    else:
        pool.shutdown(wait=True, cancel_futures=True)
    done, not_done = wait(futures, timeout=RESULT_TIMEOUT)
    assert not not_done


def test_a_crash_after_shutdown_still_runs_the_batch_queued_behind_it(ctx):
    """Regression: the worker holds two batches when shutdown() is called and the queue is
    empty. It dies in the first; the second goes back to the queue and must still be sent
    (the sender used to have quit already, and shutdown then waited for ever)."""
    pool = WorkerPool(1, mp_context=ctx)
    crash = pool.submit(faults.exit_after, 0.5)
    behind = pool.submit(abs, -1)  # prefetched into the same worker's pipe
    time.sleep(0.2)
    pool.shutdown(wait=False)
    try:
        done, not_done = wait([crash, behind], timeout=RESULT_TIMEOUT)
        assert not not_done, "a task sent back to the queue after shutdown was never run"
        assert isinstance(crash.exception(), WorkerCrashed)
        assert behind.result() == 1
    finally:
        pool.terminate()


def test_submit_async_keeps_the_event_loop_running_while_the_pool_is_full(ctx):
    """A blocking submit would freeze the loop; submit_async waits in a helper thread."""

    async def main(pool):
        finished = 0
        seen = set()  # how many tasks had finished, at each heartbeat

        async def one():
            nonlocal finished
            result = await pool.submit_async(faults.sleep_for, 0.15)
            finished += 1
            return result

        async def heartbeat():
            while True:
                await asyncio.sleep(0.01)
                seen.add(finished)

        beat = asyncio.create_task(heartbeat())
        results = await asyncio.gather(*(one() for _ in range(6)))
        beat.cancel()
        return results, seen

    with WorkerPool(1, mp_context=ctx, max_pending=1) as pool:
        results, seen = asyncio.run(main(pool))
    assert results == [0.15] * 6
    # A blocking submit would hold the loop from the second submit until the fifth task
    # is done, so no heartbeat could see 1 to 4 finished; one such beat is enough.
    assert seen & {1, 2, 3, 4}, f"the event loop stalled while the pool was full: {seen}"


def test_windows_worker_limit(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ValueError, match="max_workers must be <= 30 on Windows"):
        WorkerPool(31)


def test_the_default_worker_count_is_clamped_to_the_windows_handle_limit(monkeypatch):
    from helpers.core import machine
    from helpers.pool import parent

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(machine, "usable_cpus", lambda: 64)
    assert parent._check_max_workers(None) == parent.WINDOWS_MAX_WORKERS


EXIT_SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    from helpers.pool import WorkerPool
    from helpers.tasks import faults
    if __name__ == "__main__":
        pool = WorkerPool(1, mp_context=multiprocessing.get_context(sys.argv[1]))
        future = pool.submit(faults.sleep_for, 0.3)
        future.add_done_callback(lambda f: print("finished", f.result(), flush=True))
        # no shutdown: the interpreter must still finish the pending work before exiting
""")


@pytest.mark.parametrize("method", METHODS)
def test_the_interpreter_finishes_pending_work_before_exiting(tmp_path, method):
    script = tmp_path / "leave.py"
    script.write_text(EXIT_SCRIPT)
    run = subprocess.run([sys.executable, str(script), method], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "finished 0.3" in run.stdout


def test_messages_show_their_fields_and_still_pickle_as_before():
    import pickle

    from helpers.pool.messages import BatchResults, Progress, Stop

    results = BatchResults(3, list(range(1000)), {}, [1.0], [2.0])
    shown = repr(results)
    assert shown.startswith("BatchResults(seq=3, values=[0, 1, 2") and "retiring=False" in shown
    assert len(shown) < 300  # a big result list is shortened
    assert repr(Stop()) == "Stop()" and repr(Progress(1, -2.0, 3.5)) == (
        "Progress(seq=1, index=-2.0, started=3.5)")
    again = pickle.loads(pickle.dumps(results, pickle.HIGHEST_PROTOCOL))
    assert again.values == results.values and again.seq == 3
