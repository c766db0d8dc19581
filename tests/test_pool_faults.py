"""WorkerPool under faults and races: one regression test per bug the pool issue found,
the extensions beyond the standard library, and a stress test that mixes them all.

Every test runs under fork, forkserver and spawn (where the platform has them). None
asserts that something is fast: where order matters, the test waits for an event with a generous
deadline, or compares which of two things finished first.
"""

import asyncio
import concurrent.futures
import faulthandler
import gc
import io
import itertools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures import CancelledError, wait
from concurrent.futures.process import BrokenProcessPool

import psutil
import pytest
from conftest import RESULT_TIMEOUT, get, still_alive, wait_until

from helpers.core import workloads
from helpers.pool import PoolTerminated, TaskTimeout, WorkerCrashed, WorkerPool, threads
from helpers.pool.ledger import State
from helpers.tasks import faults

METHODS = [m for m in ("fork", "forkserver", "spawn")
           if m in multiprocessing.get_all_start_methods()]
unix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses Unix signals")


@pytest.fixture(params=METHODS)
def ctx(request):
    return multiprocessing.get_context(request.param)


def started(pool: WorkerPool, count: int = 1) -> bool:
    return sum(s.running_task is not None for s in pool.status()) >= count


# --- regressions: the bugs the pool issue lists ---


def test_a_done_callback_that_submits_never_deadlocks_a_full_pool(ctx):
    """joblib's completion callback submits the next batch, on the pool's own thread."""
    chained = []
    left = itertools.count(59, -1)
    with WorkerPool(2, mp_context=ctx, max_pending=2) as pool:
        def submit_next(future):
            n = next(left)
            if n >= 0:
                chained.append(pool.submit(abs, -n))
                chained[-1].add_done_callback(submit_next)
        first = [pool.submit(abs, -1), pool.submit(abs, -2)]
        for future in first:
            future.add_done_callback(submit_next)
        wait_until(lambda: len(chained) == 60 and all(f.done() for f in chained),
                   "the chain of callback submits stalled")


def test_joblib_with_max_pending_finishes():
    pytest.importorskip("joblib")
    from joblib import Parallel, delayed, parallel_config

    from helpers.pool import joblib_backend

    joblib_backend.register()
    with parallel_config(backend="worker-pool", n_jobs=2, max_pending=2):
        assert Parallel()(delayed(abs)(-i) for i in range(200)) == list(range(200))


def _pool_workers() -> set[int]:
    """Live descendants with no children of their own: workers, not the processes they are
    forked from (multiprocessing's forkserver), nor its resource tracker. A WorkerPool's
    own fork server has no children until it forks a worker: callers leave it out."""
    workers = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if (process.status() == psutil.STATUS_ZOMBIE or process.children()
                    or "resource_tracker" in " ".join(process.cmdline())):
                continue
        except psutil.Error:
            continue
        workers.add(process.pid)
    return workers


def test_a_dropped_pool_stops_its_workers(ctx):
    """Re-running ``pool = WorkerPool(2)`` five times leaves two workers, not ten (and,
    under fork, one fork server, not five)."""
    before = _pool_workers()
    pool, fork_servers, started = None, set(), set()
    for _ in range(5):
        pool = WorkerPool(2, mp_context=ctx)
        if pool._starter.fork_server is not None:
            fork_servers.add(pool._starter.fork_server.process.pid)
        get(pool.submit(abs, -1))
        started.update(pool.worker_pids())  # under fork this starts the second worker too
    assert len(started) == 10
    gc.collect()
    wait_until(lambda: len(_pool_workers() - before - fork_servers) <= 2,
               "dropped pools kept their workers")
    assert set(pool.worker_pids()) <= _pool_workers()
    if fork_servers:
        live_server = pool._starter.fork_server.process.pid
        assert not still_alive(fork_servers - {live_server}, RESULT_TIMEOUT), (
            "dropped pools kept their fork servers")
    pool.shutdown()


def test_a_dropped_pool_still_finishes_its_queued_work(ctx):
    future = WorkerPool(1, mp_context=ctx).submit(faults.sleep_for, 0.2)
    gc.collect()
    assert get(future) == 0.2


@unix_only
def test_an_idle_worker_killed_unnoticed_fails_none_of_the_tasks_sent_to_it(ctx):
    """The OOM killer's case: the batch sent to a dead worker never started, so it runs
    elsewhere. SIGSTOP first, so that the batch is surely sent before the death."""
    with WorkerPool(1, mp_context=ctx) as pool:
        get(pool.submit(abs, -1))
        [pid] = pool.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        futures = [pool.submit(abs, -i) for i in range(25)]
        wait_until(lambda: pool.status()[0].tasks_held > 0, "nothing was sent to the worker")
        os.kill(pid, signal.SIGKILL)
        assert [get(f) for f in futures] == list(range(25))


def test_max_pending_bounds_the_items_map_holds_not_its_chunks(ctx):
    pulled = itertools.count()
    yielded = 0

    def numbers():
        for i in range(200_000):
            next(pulled)
            yield i

    with WorkerPool(2, mp_context=ctx, max_pending=1000) as pool:
        most_ahead = last = 0
        for value in pool.map(workloads.noop, numbers(), chunksize="auto"):
            yielded, last = yielded + 1, value
            if yielded % 997 == 0:
                most_ahead = max(most_ahead, next(pulled) - yielded)
        assert last == 199_999
    assert most_ahead <= 1000 + 1000, f"map held {most_ahead} items ahead of the consumer"


def test_an_unpicklable_argument_raises_the_pickling_error_itself(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        good = pool.submit(abs, -1)
        bad = pool.submit(abs, lambda: None)
        with pytest.raises((pickle.PicklingError, AttributeError)) as raised:
            get(bad)
        assert "to send it to a worker" in "".join(raised.value.__notes__)
        assert get(good) == 1


def test_system_exit_while_pickling_a_result_is_that_tasks_error(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        future = pool.submit(faults.return_exit_at_pickle)
        with pytest.raises(SystemExit):
            get(future)
        assert get(pool.submit(abs, -2)) == 2


def test_results_are_not_kept_after_they_are_delivered(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        get(pool.submit(faults.make_tracked))
        assert not get(pool.submit(faults.previous_result_alive)), (
            "the worker still references the previous task's result")
        results = pool.map(faults.make_tracked, range(3), chunksize=3)  # they arrive together
        first = next(results)
        delivered = weakref.ref(first)
        del first
        gc.collect()
        assert delivered() is None, "map still references a result it has yielded"
        assert len(list(results)) == 2


def test_a_failure_to_start_threads_at_shutdown_is_a_broken_pool(ctx, monkeypatch):
    def refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(BrokenProcessPool, match="could not start") as raised:
        WorkerPool(1, mp_context=ctx)
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_task_timeout_counts_from_the_start_not_from_sending(ctx):
    """Regression: a slow worker start-up (a spawn replacement importing) used to count
    against the task's timeout."""
    with WorkerPool(1, mp_context=ctx, initializer=faults.slow_initializer, initargs=(2.0,),
                    task_timeout=1.0) as pool:
        assert get(pool.submit(faults.sleep_for, 0.05)) == 0.05
        crash = pool.submit(faults.exit_abruptly, 1)  # its replacement starts slowly too
        follow_up = pool.submit(faults.sleep_for, 0.05)
        with pytest.raises(WorkerCrashed):
            get(crash)
        assert get(follow_up) == 0.05


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_workers_come_from_the_single_threaded_fork_server():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with WorkerPool(2, mp_context=multiprocessing.get_context("fork")) as pool:
            for _ in range(3):
                with pytest.raises(WorkerCrashed):
                    get(pool.submit(faults.exit_abruptly, 1))
            pids = pool.worker_pids()
            parents = {psutil.Process(pid).ppid() for pid in pids}
            assert os.getpid() not in parents, "a worker was forked from the pool's process"
            assert len(parents) == 1
    forked_from_threads = [w for w in caught if "multi-threaded" in str(w.message)]
    assert not forked_from_threads


def test_each_map_has_its_own_estimate(ctx):
    with WorkerPool(2, mp_context=ctx) as pool:
        list(pool.map(workloads.noop, range(50_000), chunksize="auto"))
        with pool._ledger.lock:
            keys = list(pool._ledger.estimates)
        assert all(callable(k) or isinstance(k, type) for k in keys), (
            "a finished map left its estimate behind")


def test_a_big_batch_waits_for_an_idle_worker_instead_of_blocking_the_sender(ctx):
    big = b"x" * (8 * 2**20)
    with WorkerPool(2, mp_context=ctx) as pool:
        slow = pool.submit(faults.sleep_for, 3.0)
        short = pool.submit(faults.sleep_for, 0.3)
        wait_until(lambda: started(pool, 2), "the two tasks never started")
        pool.submit(faults.sleep_then_return, 0, big)
        tiny = pool.submit(abs, -1)
        done, _ = wait([slow, tiny], timeout=RESULT_TIMEOUT,
                       return_when=concurrent.futures.FIRST_COMPLETED)
        assert tiny in done, "the tiny task waited behind a big batch queued to a busy worker"
        get(short)


def test_submit_async_does_not_use_the_default_executor(ctx):
    async def main(pool):
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        release = threading.Event()
        blocker = loop.run_in_executor(None, release.wait, RESULT_TIMEOUT)  # its one thread
        try:
            return await asyncio.wait_for(asyncio.gather(
                *(pool.submit_async(abs, -i) for i in range(6))), timeout=RESULT_TIMEOUT)
        finally:
            release.set()
            await blocker

    with WorkerPool(1, mp_context=ctx, max_pending=1) as pool:
        assert asyncio.run(main(pool)) == list(range(6))


def test_map_timeout_cancels_the_chunk_it_timed_out_on(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        results = pool.map(faults.sleep_for, [30])
        with pytest.raises(concurrent.futures.TimeoutError):
            next(pool.map(faults.sleep_for, [30], timeout=0.5))
        results.close()
        wait_until(lambda: pool.stats().cancelled >= 2, "the timed-out chunk kept running")
        assert get(pool.submit(abs, -3)) == 3


def test_a_cancelled_future_stops_counting_against_max_pending(ctx):
    with WorkerPool(1, mp_context=ctx, max_pending=2) as pool:
        running = pool.submit(faults.sleep_for, 30)
        queued = pool.submit(abs, -1)
        assert queued.cancel()
        submitted = threading.Event()
        threading.Thread(target=lambda: (pool.submit(abs, -2), submitted.set()),
                         daemon=True).start()
        assert submitted.wait(RESULT_TIMEOUT / 2), "submit still blocked after a cancel"
        running.cancel()


def test_a_map_read_after_its_with_block_gives_every_result(ctx):
    """ProcessPoolExecutor.map submits everything at once, so this pattern works there."""
    with WorkerPool(2, mp_context=ctx) as pool:
        results = pool.map(abs, range(-100, 0))
    assert list(results) == list(range(100, 0, -1))


def test_a_cancelled_prefetched_batch_still_frees_its_worker(ctx):
    """Regression: a batch whose every task was cancelled came back without waking the
    sender, and the next task waited for ever on an idle worker."""
    with WorkerPool(1, mp_context=ctx) as pool:
        for _ in range(3):  # short-task estimates: a second batch is prefetched
            get(pool.submit(faults.sleep_for, 0.001))
            get(pool.submit(abs, -1))
        first = pool.submit(faults.sleep_for, 0.5)
        behind = pool.submit(abs, -2)
        deadline = time.monotonic() + 1  # usually prefetched at once; if not, still valid
        while pool.status()[0].tasks_held < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert behind.cancel()
        follow_up = pool.submit(faults.sleep_for, 0.001)
        assert get(first) == 0.5 and get(follow_up) == 0.001


@unix_only
def test_a_task_sent_behind_another_is_cancelled_but_still_runs(ctx, tmp_path):
    """What futures.py says: a task sent ahead to a busy worker is cancelled at once, but
    that worker still runs the function when it gets there, and is not killed for it."""
    with WorkerPool(1, mp_context=ctx) as pool:
        get(pool.submit(abs, -1))
        [pid] = pool.worker_pids()
        mark = tmp_path / "ran"
        os.kill(pid, signal.SIGSTOP)  # so that the second task is surely sent behind the first
        try:
            first = pool.submit(faults.sleep_for, 0.1)
            behind = pool.submit(faults.sleep_then_mark, 0.0, str(mark))
            wait_until(lambda: pool.status()[0].tasks_held == 2,
                       "the second task was not sent ahead")
            assert behind.cancel() and behind.cancelled()
        finally:
            os.kill(pid, signal.SIGCONT)
        assert get(first) == 0.1
        wait_until(mark.exists, "the task sent ahead did not run")
        assert pool.worker_pids() == [pid] and pool.stats().workers_replaced == 0


def test_a_lone_task_whose_result_is_lost_runs_once_more(ctx, tmp_path):
    """A task that finished but whose worker died before its result was sent runs again,
    once, alone or not (before, a batch of one task failed at once); lost twice, it fails."""
    log = tmp_path / "runs"
    with WorkerPool(1, mp_context=ctx) as pool:
        with pytest.raises(WorkerCrashed, match="before its result was sent back") as lost:
            get(pool.submit(faults.log_pid_then_return_death, str(log)))
        assert lost.value.result_lost
        pids = log.read_text().split()
        assert len(pids) == 2 and pids[0] != pids[1]  # a replacement ran it the second time
        assert get(pool.submit(abs, -1)) == 1


# --- beyond the standard library ---


def test_cancel_stops_a_running_task_and_only_that_task(ctx):
    with WorkerPool(2, mp_context=ctx) as pool:
        doomed = pool.submit(faults.sleep_for, 30)
        others = [pool.submit(faults.sleep_for, 0.2) for _ in range(3)]
        wait_until(lambda: started(pool), "nothing started")
        wait_until(lambda: any(s.running_task == 0 for s in pool.status()),
                   "the long task never started")
        pids = set(pool.worker_pids())
        assert doomed.cancel()
        assert doomed.cancelled()
        with pytest.raises(CancelledError):
            doomed.result()
        assert [get(f) for f in others] == [0.2] * 3
        wait_until(lambda: len(set(pool.worker_pids()) - pids) == 1,
                   "the worker was not replaced")
        assert pool.stats().workers_replaced == 1


def test_cancel_of_a_finished_task_is_refused(ctx):
    with WorkerPool(1, mp_context=ctx) as pool:
        future = pool.submit(abs, -1)
        get(future)
        assert not future.cancel()
        assert future.result() == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="reads resident memory from /proc (elsewhere only the peak)")
def test_max_memory_per_child_retires_a_worker_that_grew(ctx):
    """The limit is on growth: under fork a worker starts with a big parent's pages
    resident (here, 300 MB the test holds), which must not count against it."""
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    with WorkerPool(1, mp_context=ctx, max_memory_per_child=150 * 2**20) as pool:
        first = get(pool.submit(faults.hold_memory, 1))
        grown = get(pool.submit(faults.hold_memory, 200))
        assert grown == first
        wait_until(lambda: (pids := pool.worker_pids()) and pids[0] != first,
                   "the grown worker was not retired")
        assert get(pool.submit(faults.worker_pid)) != first
        assert pool.stats().workers_retired == 1
    del ballast


class _FlushHangsInAForkedChild(io.StringIO):
    """A ``sys.stdout`` whose flush never returns in a forked child: what happens when
    another thread of the parent held the stream's lock at the moment of the fork (in
    the child that lock stays held for ever, so a worker hangs in its last flush, on its
    way out). Hanging here, rather than holding a real lock, keeps the test exact:
    multiprocessing flushes in the parent just before it forks."""

    def __init__(self) -> None:
        super().__init__()
        self.parent_pid = os.getpid()

    def flush(self) -> None:
        if os.getpid() != self.parent_pid:
            threading.Event().wait()  # the lock nobody in this process will release
        super().flush()


@pytest.mark.skipif("fork" not in METHODS, reason="the fork start method is Unix-only")
@pytest.mark.parametrize("limit", [{"max_tasks_per_child": 1},
                                   {"max_memory_per_child": 50 * 2**20}])
def test_a_retired_worker_that_hangs_on_its_way_out_is_killed_and_replaced(monkeypatch, limit):
    """Found in CI: a forked worker retired by max_memory_per_child hung in the flush
    multiprocessing does at exit, and the pool waited for ever for it to go."""
    monkeypatch.setattr(sys, "stdout", _FlushHangsInAForkedChild())
    with WorkerPool(1, mp_context=multiprocessing.get_context("fork"), **limit) as pool:
        first = get(pool.submit(faults.hold_memory, 60))
        began = time.monotonic()
        wait_until(lambda: (pids := pool.worker_pids()) and pids[0] != first,
                   "the retired worker, hung on its way out, was not replaced")
        waited = time.monotonic() - began
        assert get(pool.submit(faults.worker_pid)) not in (first, None)
        stats = pool.stats()
        assert (stats.workers_retired, stats.workers_replaced) == (1, 0)
    assert waited >= threads.STOP_GRACE_SECONDS * 0.9, "it was killed before its grace ran out"


@pytest.mark.parametrize("stop", ["terminate_workers", "kill_workers"])
def test_terminate_and_kill_workers(ctx, stop):
    pool = WorkerPool(1, mp_context=ctx)
    running = pool.submit(faults.sleep_for, 30)
    queued = pool.submit(abs, -1)
    wait_until(lambda: started(pool), "the task never started")
    getattr(pool, stop)()
    with pytest.raises(PoolTerminated):
        get(running)
    # Cancelled, or - if it was already sent behind the running task - failed with it.
    assert queued.cancelled() or isinstance(queued.exception(), PoolTerminated)
    with pytest.raises(BrokenProcessPool):
        pool.submit(abs, -1)
    pool.shutdown(wait=True)
    assert pool.state is State.TERMINATED


def test_map_buffersize_bounds_the_chunks_in_flight(ctx):
    pulled = itertools.count()

    def numbers():
        for i in itertools.count():
            next(pulled)
            yield i

    with WorkerPool(2, mp_context=ctx) as pool:
        results = pool.map(abs, numbers(), buffersize=3)
        assert [next(results) for _ in range(20)] == list(range(20))
        assert next(pulled) <= 20 + 3 + 1
        results.close()
        with pytest.raises(ValueError, match="buffersize must be None or > 0"):
            pool.map(abs, [1], buffersize=0)
        with pytest.raises(TypeError, match="buffersize"):
            pool.map(abs, [1], buffersize=1.5)


def test_stats_count_what_happened(ctx):
    with WorkerPool(1, mp_context=ctx, task_timeout=5) as pool:
        futures = [pool.submit(abs, -1), pool.submit(faults.raise_error),
                   pool.submit(faults.exit_abruptly, 1), pool.submit(abs, -2)]
        wait(futures, timeout=RESULT_TIMEOUT)
        stats = pool.stats()
    assert (stats.completed, stats.failed, stats.crashed) == (2, 1, 1)
    assert stats.workers_replaced == 1
    assert stats.run_time.p50 >= 0 and set(stats.utilisation) <= {f"pid {p}" for p in
                                                                   pool.worker_pids()} | set(
        stats.utilisation)
    assert "completed" in stats.as_markdown()


# --- the stress test ---


STRESS_TASKS = [
    (abs, (-1,), 1), (faults.sleep_for, (0.02,), 0.02), (faults.exit_abruptly, (1,), WorkerCrashed),
    (faults.raise_error, (), ValueError), (faults.sleep_for, (5,), TaskTimeout),
    (workloads.noop, (7,), 7),
]


def _dump(pool: WorkerPool, futures) -> str:
    """What a hung stress round looks like from outside: for the failure message."""
    pending = [i for i, f in enumerate(futures) if not f.done()]
    faulthandler.dump_traceback(all_threads=True)
    return (f"{pool!r}; state {pool.state}; workers {pool.status()}; "
            f"{len(pending)} futures pending, e.g. {pending[:10]}")


@pytest.mark.parametrize("seed", range(4))
def test_stress_every_task_ends_resolved(ctx, seed):
    """Crashes, timeouts, recycling, cancellations, max_pending callbacks and a shutdown
    from another thread, all at once. Every future must end, with the outcome its task
    allows; on a hang, the test dumps the pool's state instead of hanging."""
    rng = random.Random(seed)
    pool = WorkerPool(2, mp_context=ctx, max_pending=8, task_timeout=2.0,
                      max_tasks_per_child=5)
    futures, expected = [], []
    lock = threading.Lock()

    def chain(future):
        if rng.random() < 0.3:
            try:
                with lock:
                    futures.append(pool.submit(abs, -5))
                    expected.append(5)
            except (RuntimeError, BrokenProcessPool):
                pass  # the pool is shutting down: refusing is the right answer

    try:
        for _ in range(40):
            fn, args, outcome = rng.choice(STRESS_TASKS)
            future = pool.submit(fn, *args)
            future.add_done_callback(chain)
            with lock:
                futures.append(future)
                expected.append(outcome)
            if rng.random() < 0.15:
                future.cancel()
        if seed % 2:
            pool.map(abs, range(-50, 0), chunksize=4)
        stopper = threading.Thread(target=pool.shutdown,
                                   kwargs={"wait": True, "cancel_futures": seed % 2 == 0})
        stopper.start()
        with lock:
            snapshot = list(futures)
        done, not_done = wait(snapshot, timeout=RESULT_TIMEOUT * 2)
        assert not not_done, _dump(pool, snapshot)
        stopper.join(RESULT_TIMEOUT)
        assert not stopper.is_alive(), _dump(pool, snapshot)
        with lock:
            pairs = list(zip(futures, expected, strict=True))
        wait([f for f, _ in pairs], timeout=RESULT_TIMEOUT)
        for future, outcome in pairs:
            assert future.done(), _dump(pool, [future])
            if future.cancelled():
                continue
            error = future.exception()
            if isinstance(outcome, type):
                assert isinstance(error, (outcome, CancelledError, BrokenProcessPool)), error
            else:
                assert error is None and future.result() == outcome or isinstance(
                    error, BrokenProcessPool), error
        assert pool.state is State.CLOSED
    finally:
        pool.terminate()


# --- the direct path: a lone task on an idle pool skips the sender thread ---


def _record_writers(pool):
    """Wrap the pool's one write function: which thread wrote each batch, and its size."""
    writers = []
    write = pool._sender.write_booked

    def recording(worker, payload):
        writers.append((threading.current_thread().name, len(worker.batches[-1].tasks)))
        write(worker, payload)

    pool._sender.write_booked = recording
    return writers


def test_a_lone_task_on_an_idle_pool_is_written_by_the_submitting_thread(ctx):
    with WorkerPool(2, mp_context=ctx) as pool:
        writers = _record_writers(pool)
        for i in range(5):
            assert get(pool.submit(abs, -i)) == i
        assert writers == [(threading.current_thread().name, 1)] * 5
        writers.clear()
        assert [get(f) for f in [pool.submit(abs, -i) for i in range(2000)]] == list(range(2000))
        names = {name for name, _ in writers}
        assert "WorkerPool-sender" in names, "queued tasks must still go through the sender"
        assert sum(size for _, size in writers) == 2000


def test_direct_and_sender_writes_keep_every_batch_in_order(ctx):
    """Regression guard for the write lock: submits from many threads, some finding an
    idle worker and some not, with small and large arguments, never reorder or
    interleave two batches on one pipe (the receiver would break the pool)."""
    big = b"y" * (256 * 1024)  # over PREFETCH_MAX_BYTES: always through the sender
    errors = []

    def client(seed):
        rng = random.Random(seed)
        try:
            for _ in range(150):
                payload = big if rng.random() < 0.1 else b"z" * rng.randrange(100)
                assert get(pool.submit(faults.sleep_then_return, rng.random() / 2000, payload)
                           ) == payload
                if rng.random() < 0.3:
                    futures = [pool.submit(abs, -j) for j in range(rng.randrange(1, 40))]
                    assert [get(f) for f in futures] == list(range(len(futures)))
        except BaseException as error:  # reported by the main thread below
            errors.append(error)

    with WorkerPool(2, mp_context=ctx) as pool:
        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RESULT_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert not errors, errors[0]
        assert pool.state is State.RUNNING


class _CountingCondition:
    """Stands in for the ledger's ``work_or_room``: counts the sender's wake-ups."""

    def __init__(self, condition: threading.Condition) -> None:
        self.condition, self.sender_woke = condition, 0

    def wait(self, timeout=None):
        woke = self.condition.wait(timeout)
        if threading.current_thread().name == "WorkerPool-sender":
            self.sender_woke += 1
        return woke

    def __getattr__(self, name):
        return getattr(self.condition, name)


def test_a_lone_task_s_round_trip_does_not_wake_the_sender(ctx):
    """With nothing queued, a settled batch gives the sender nothing to do: waking it
    anyway cost a thread switch on every round trip (and the GIL, as the result came)."""
    with WorkerPool(2, mp_context=ctx) as pool:
        assert get(pool.submit(abs, -1)) == 1
        counting = _CountingCondition(pool._ledger.work_or_room)
        pool._ledger.work_or_room = counting
        for i in range(50):
            assert get(pool.submit(abs, -i)) == i
        # Its first wake-up ends the wait it began before the stand-in: at most one more.
        assert counting.sender_woke <= 1, f"the sender woke {counting.sender_woke} times"
        assert [get(f) for f in [pool.submit(abs, -i) for i in range(500)]] == list(range(500))


def test_a_lone_task_s_round_trip_polls_no_pipe(ctx, monkeypatch):
    """The receiver's wait says which pipe is readable; ``Connection.poll()`` before
    reading it (or the wake-up pipe) built and dropped a poll set each time, twice per
    result, on the round trip's critical path."""
    with WorkerPool(2, mp_context=ctx) as pool:
        assert get(pool.submit(abs, -1)) == 1
        polls = []
        original = multiprocessing.connection.Connection.poll

        def counting_poll(self, timeout=0.0):
            polls.append(threading.current_thread().name)
            return original(self, timeout)

        monkeypatch.setattr(multiprocessing.connection.Connection, "poll", counting_poll)
        for i in range(50):
            assert get(pool.submit(abs, -i)) == i
        pool._wakeup.wake()  # the receiver takes a wake-up without polling either
        assert get(pool.submit(abs, -7)) == 7
        assert polls.count("WorkerPool-receiver") == 0, polls


def test_the_receiver_s_wait_set_follows_the_objects_it_is_given():
    """``threads.WaitSet`` keeps one poll set between waits and builds a new one when the
    objects change: it reports what is ready among the objects of *this* call only."""
    first_reader, first_writer = multiprocessing.Pipe(duplex=False)
    second_reader, second_writer = multiprocessing.Pipe(duplex=False)
    waiting = threads.WaitSet()
    try:
        assert waiting.wait([first_reader], 0) == []
        first_writer.send_bytes(b"x")
        assert waiting.wait([first_reader], 0) == [first_reader]
        assert waiting.wait([second_reader], 0) == []  # first_reader is ready, not asked
        second_writer.send_bytes(b"y")
        assert set(waiting.wait([first_reader, second_reader], 1)) == {first_reader,
                                                                       second_reader}
        first_reader.recv_bytes()
        assert waiting.wait([first_reader, second_reader], 1) == [second_reader]
        second_writer.close()
        second_reader.recv_bytes()
        assert waiting.wait([second_reader], 1) == [second_reader]  # end of file
    finally:
        waiting.close()
        for end in (first_reader, first_writer, second_reader):
            end.close()


def test_a_worker_process_does_not_import_the_pool_s_parent_side():
    """Under spawn and forkserver a worker imports helpers.pool.worker_process (and so
    helpers/pool/__init__.py) before its first task: it must not pull in the pool, its
    threads and concurrent.futures, which only the parent uses."""
    code = ("import sys, helpers.pool.worker_process; "
            "print(sorted(m for m in sys.modules if m.startswith(('helpers.pool.', "
            "'concurrent.futures'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert loaded == "['helpers.pool.messages', 'helpers.pool.worker_process']", loaded


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_the_pool_forks_one_worker_and_the_fork_server_the_others():
    """Before it has threads, the pool forks its first worker itself; the fork server
    forks the others (worker_pids() starts them all) and every replacement."""
    with WorkerPool(3, mp_context=multiprocessing.get_context("fork")) as pool:
        server = pool._starter.fork_server.process.pid
        first = pool.worker_pids()
        assert len(first) == 3
        assert [psutil.Process(pid).ppid() for pid in first] == [os.getpid(), server, server]
        with pytest.raises(WorkerCrashed):
            get(pool.submit(faults.exit_abruptly, 1))
        wait_until(lambda: len(set(pool.worker_pids()) - set(first)) == 1,
                   "no replacement started")
        (replacement,) = set(pool.worker_pids()) - set(first)
        assert psutil.Process(replacement).ppid() == server


def _rendezvous(directory: str, me: int, count: int) -> bool:
    """Say "here" in ``directory``; True once ``count`` tasks have, False after 20 s."""
    open(os.path.join(directory, str(me)), "w").close()
    deadline = time.monotonic() + 20
    while len(os.listdir(directory)) < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_a_worker_starts_when_work_waits_for_it(tmp_path):
    """A fresh pool under fork has one worker; a lone task starts no other. A second task
    submitted while the first runs starts the next worker and runs there, not queued
    behind the first (each waits for the other: behind it, both would time out)."""
    fork = multiprocessing.get_context("fork")
    with WorkerPool(2, mp_context=fork) as pool:
        server = pool._starter.fork_server.process
        assert get(pool.submit(abs, -1)) == 1
        time.sleep(0.2)
        assert psutil.Process(server.pid).children() == [], "a lone task started a worker"
        waiting = pool.submit(_rendezvous, str(tmp_path), 0, 2)
        wait_until(lambda: waiting.running(), "the first task did not start")
        making = pool.submit(_rendezvous, str(tmp_path), 1, 2)
        assert get(making) is True
        assert get(waiting) is True
        assert len(psutil.Process(server.pid).children()) == 1


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_tasks_that_wait_for_each_other_each_get_a_new_worker(tmp_path):
    """Three short tasks of one function (its estimate says "batch them") that can only
    finish together: each goes to its own worker as the pool starts them, none is
    batched or queued behind another."""
    with WorkerPool(3, mp_context=multiprocessing.get_context("fork")) as pool:
        alone = tmp_path / "alone"
        alone.mkdir()
        for i in range(5):  # a short estimate for _rendezvous
            assert get(pool.submit(_rendezvous, str(alone), i, 1))
        together = tmp_path / "together"
        together.mkdir()
        futures = [pool.submit(_rendezvous, str(together), i, 3) for i in range(3)]
        assert [get(f) for f in futures] == [True, True, True]
        assert len({record.worker for record in pool.trace()[-3:]}) == 3


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_one_map_chunk_starts_no_other_worker():
    """A map of one chunk is one task: the pool forks no worker for it."""
    with WorkerPool(4, mp_context=multiprocessing.get_context("fork")) as pool:
        server = pool._starter.fork_server.process
        assert list(pool.map(abs, range(-10, 0), chunksize=10)) == list(range(10, 0, -1))
        time.sleep(0.2)
        assert psutil.Process(server.pid).children() == []


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_worker_pids_in_a_done_callback_does_not_wait_for_itself():
    """worker_pids() starts the workers not started yet and waits for them, except on the
    pool's own thread (a done-callback), which would wait for itself: it lists those
    started so far."""
    with WorkerPool(2, mp_context=multiprocessing.get_context("fork")) as pool:
        seen = []
        future = pool.submit(abs, -1)
        future.add_done_callback(lambda _: seen.append(pool.worker_pids()))
        get(future)
        wait_until(lambda: seen, "the callback did not run")
        assert len(seen[0]) in (1, 2)
        assert len(pool.worker_pids()) == 2


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_worker_pids_waits_for_a_worker_being_started():
    """worker_pids() while the fork server is still forking the last slot's worker lists
    it too (it waits for it), not only those started before."""
    with WorkerPool(2, mp_context=multiprocessing.get_context("fork")) as pool:
        server = pool._starter.fork_server
        fork_worker = server.start_worker

        def slow_start(slot):
            time.sleep(0.5)
            return fork_worker(slot)

        server.start_worker = slow_start
        futures = [pool.submit(faults.sleep_for, 0.3) for _ in range(2)]
        wait_until(lambda: pool._ledger.growing == 1, "no worker being started")
        assert len(pool.worker_pids()) == 2
        assert [get(f) for f in futures] == [0.3, 0.3]


@pytest.mark.skipif("fork" not in METHODS, reason="the platform has no fork")
def test_under_fork_a_worker_that_cannot_be_forked_leaves_the_pool_running():
    """If the fork server cannot fork a new worker (EAGAIN: too many processes), the
    pool warns and runs on with the workers it has; no task is lost."""
    with WorkerPool(2, mp_context=multiprocessing.get_context("fork")) as pool:
        server = pool._starter.fork_server

        def refuse(slot):
            raise OSError(11, "Resource temporarily unavailable")

        server.start_worker = refuse
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # said on the receiver's thread
            futures = [pool.submit(abs, -i) for i in range(20)]
            assert [get(f) for f in futures] == list(range(20))
            assert len(pool.worker_pids()) == 1
        assert pool._ledger.start_errors == [
            "slot 1: BlockingIOError: [Errno 11] Resource temporarily unavailable"]
        assert pool.state is State.RUNNING


# --- what a dead worker's batch becomes (split_batch, no processes) ---


def _tasks(count: int) -> list:
    from helpers.pool.ledger import Task

    return [Task(i, None, abs, (i,), {}, "abs", 1, 0.0) for i in range(count)]


def test_a_dead_worker_s_batch_splits_into_failed_lost_twice_and_again():
    from helpers.pool.ledger import SentBatch
    from helpers.pool.messages import Progress
    from helpers.pool.threads import split_batch

    tasks = _tasks(4)
    tasks[0].retried = True  # run again once already
    failing, lost_twice, again = split_batch(SentBatch(7, tasks), Progress(7, 2, 0.0), None,
                                             None)
    assert failing == [tasks[2]] and lost_twice == [tasks[0]]
    assert again == [tasks[1], tasks[3]] and tasks[1].retried and not tasks[3].retried
    assert split_batch(SentBatch(8, tasks), Progress(7, 2, 0.0), None, None) == ([], [], tasks)


@pytest.mark.parametrize("index", [0, 1, -2.0])  # mid-batch, or READING its one task
def test_a_task_interrupted_by_a_kill_meant_for_another_runs_again(index):
    from helpers.pool.ledger import SentBatch
    from helpers.pool.messages import READING, Progress
    from helpers.pool.threads import split_batch

    tasks = _tasks(2 if index != READING else 1)
    tasks[0].retried = True  # run again once already: a pool's kill does not count
    running = tasks[int(index)] if index != READING else tasks[0]
    failed, lost_twice, again = split_batch(SentBatch(3, tasks), Progress(3, index, 0.0),
                                            "cancelled", None)
    assert failed == [] and lost_twice == [] and running in again and running.alone
    assert again == tasks  # with index=1, the finished tasks[0] runs again, not lost twice
    assert running is tasks[0] or not running.retried  # the kill was not its fault
    failed, _, _ = split_batch(SentBatch(3, _tasks(1)), Progress(3, READING, 0.0), None, None)
    assert len(failed) == 1  # a worker dying while it unpickles its one task was running it


def test_a_timeout_kill_fails_only_the_task_that_overran():
    """The worker finished the overdue task and moved on before the kill landed: the
    overdue task is in the failed list (the receiver gives it TaskTimeout), the one the
    kill caught runs again, and a finished task whose result died runs again even if it
    had been run again once already."""
    from helpers.pool.ledger import SentBatch
    from helpers.pool.messages import FINISHED, Progress
    from helpers.pool.threads import split_batch

    tasks = _tasks(4)
    tasks[0].retried = True
    failed, lost_twice, again = split_batch(SentBatch(5, tasks), Progress(5, 2, 0.0),
                                            "timeout", (5, 1))
    assert failed == [tasks[1]] and lost_twice == []
    assert again == [tasks[0], tasks[2], tasks[3]] and not tasks[2].retried
    # the kill meant for the last task landed after the worker had finished the batch
    tasks = _tasks(2)
    failed, _, again = split_batch(SentBatch(6, tasks), Progress(6, FINISHED, 0.0),
                                   "timeout", (6, 1))
    assert failed == [tasks[1]] and again == [tasks[0]]
    # it had finished that batch and started the next: nothing of this one overran
    tasks = _tasks(1)
    failed, _, again = split_batch(SentBatch(8, tasks), Progress(8, 0, 0.0),
                                   "timeout", (7, 0))
    assert failed == [] and again == tasks and not tasks[0].retried


def test_the_receiver_notes_which_task_a_timeout_kill_is_for(monkeypatch):
    """``kill_overdue`` records the (batch, index) it saw overrunning, for split_batch
    and settle_batch (a stand-in receiver: its board says task 1 of batch 3 started 5 s
    ago, with task_timeout=1)."""
    from types import SimpleNamespace

    from helpers.pool.ledger import Ledger, SentBatch, Worker
    from helpers.pool.messages import Progress

    ledger = Ledger(1, None)
    worker = Worker(0, SimpleNamespace(pid=1, sentinel=None), None)
    worker.batches.append(SentBatch(3, _tasks(2)))
    ledger.workers.append(worker)
    board = SimpleNamespace(read=lambda slot: Progress(3, 1, time.monotonic() - 5))
    receiver = SimpleNamespace(options=SimpleNamespace(task_timeout=1.0), ledger=ledger,
                               board=board)
    killed = []
    monkeypatch.setattr(threads, "kill_quietly", killed.append)
    threads.Receiver.kill_overdue(receiver)
    assert killed == [worker] and worker.kill_reason == "timeout"
    assert worker.kill_target == (3, 1)


def test_a_result_that_beats_its_timeout_kill_still_fails_with_task_timeout():
    """The kill was decided, but the overdue task's batch came back before it landed:
    that task fails with TaskTimeout all the same (it ran past task_timeout); the other
    task of the batch gets its result."""
    from types import SimpleNamespace

    from helpers.pool.ledger import Ledger, SentBatch, Worker
    from helpers.pool.messages import BatchResults

    ledger = Ledger(1, None)
    worker = Worker(0, SimpleNamespace(pid=1, sentinel=None), None)
    tasks = _tasks(2)
    for task in tasks:
        task.future = concurrent.futures.Future()
        task.future.set_running_or_notify_cancel()
        ledger.count_in(task)
    worker.batches.append(SentBatch(4, tasks))
    worker.kill_reason, worker.kill_target = "timeout", (4, 1)
    receiver = SimpleNamespace(ledger=ledger, sender=SimpleNamespace(has_quota=lambda w: True),
                               record_trace=lambda *args: None,
                               crash_error=lambda w: TaskTimeout("ran too long"))
    threads.Receiver.settle_batch(receiver, worker,
                                  BatchResults(4, [10, 20], {}, [0.0, 0.1], [0.1, 0.2]))
    assert tasks[0].future.result(0) == 10
    with pytest.raises(TaskTimeout, match="ran too long"):
        tasks[1].future.result(0)
    assert ledger.counts["timed_out"] == 1 and ledger.counts["completed"] == 1


def test_worker_crashed_keeps_what_it_says_through_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(WorkerCrashed(123, -9, result_lost=True)))
    assert error.result_lost and error.pid == 123 and error.exitcode == -9
    assert "already been run again once" in str(error) and "SIGKILL" in str(error)
    assert "while it ran this task" in str(pickle.loads(pickle.dumps(WorkerCrashed(5, 3))))
