"""WorkerPool: the course's zero-dependency process pool (standard library only).

A ``concurrent.futures.Executor`` that is cheaper per task than the standard library's
pools and survives the faults they do not. Data flow::

    submit(fn, *args) ─► TaskFuture ─► pending queue (ledger.py: the pool's books)
                                             │
          Sender thread (threads.py): takes a *batch* of pending tasks, pickles it
          (a task that will not pickle fails alone), writes it to the pipe of a
          worker with room. (A lone task, up to 32 KiB pickled, that finds a worker
          idle and nothing queued skips this hop: submit() writes it to that
          worker's pipe itself.)
                                             │
        ┌───────────────┬────────────────────┴───────┐
        ▼ pipe          ▼ pipe                        ▼ pipe
     worker 1        worker 2          …          worker N    (worker_process.py)
        │   writes "batch 7, task 3, since t" on the shared progress board
        └───────────────┴──────────────┬───────────────┘
                                       ▼
          Receiver thread (threads.py): waits on every pipe *and* process, settles
          futures, records the trace, kills a worker whose task overran
          ``task_timeout`` or was cancelled while running, replaces dead workers,
          and moves the pool through its states (ledger.State).
                                       │
                                       ▼
    Future (FINISHED) ─► result(), wait(), as_completed(), asyncio.wrap_future()

Both threads hold only a weak reference to the pool: a pool the program drops (a
re-run notebook cell) finishes its queued work and stops its workers. Its finalisers
(that reference's callback, a dropped ``map``'s ``__del__``) take no lock: they leave
a note for the receiver and wake it, and the receiver does the locked work.

Stopping never waits for ever: a worker asked to exit (sent Stop once the pool has
drained, or SIGTERM by ``terminate_workers()``) that is still alive
``threads.STOP_GRACE_SECONDS`` later (its task ignored SIGTERM, or left a thread that
keeps it from exiting) is killed with SIGKILL and reaped, under ``shutdown(wait=True)``,
``shutdown(wait=False)``, a dropped pool and the exit hook alike. The receiver watches
each worker's process as well as its pipe (a pidfd on Linux, else the process's
sentinel), so a worker whose pipe a grandchild holds open is still seen to die. (A
worker forked by the fork server has no sentinel: without a pidfd, only its pipe.)

Why it is fast: every worker has its own pipe, and tiny tasks travel in batches
sized from measured task times (a few milliseconds of work per batch), so the
per-task cost is one Future, a pickle and a list entry. ``map`` sends whole
chunks as single tasks and never makes a Future per item. A single task on an idle
pool passes through one helper thread, the receiver, which sets its future: submit()
writes it to the idle worker's pipe itself. (ProcessPoolExecutor's passes its manager
thread twice, and its call queue's feeder thread.) And a worker that has just sent its
results watches its pipe, busy, for ``worker_process.IDLE_SPIN_SECONDS`` before it
sleeps, so the next task of a caller that submits as soon as it has a result may find
the worker still awake. (Workers do not spin where the pool may keep only one CPU busy:
see ``idle_spin_seconds``.)

What a crash costs: each worker has its own pipe and writes which task it is
running on the progress board, so when a worker dies (segfault, ``os._exit``,
SIGKILL, memory limit) the parent knows exactly what it held:

* the task it was **running** fails with :class:`WorkerCrashed`;
* tasks of its batch it had **not started**, and batches queued behind it, go back
  to the front of the queue and run on another worker;
* tasks of its batch it had **finished** but whose results had not been sent yet
  run again, once, each on its own (a batch's results travel together; a task
  whose result is lost twice fails). Only tiny tasks share a batch, so this is a
  few milliseconds of work at most;
* a replacement worker starts. Nothing else breaks; every submitted task ends
  resolved.

When the pool kills a worker itself, to stop a task that was cancelled while running
or ran past ``task_timeout``, only that task is cancelled or fails (with
:class:`TaskTimeout`, even if it finished while the kill was on its way). A task the
worker had moved on to meanwhile runs again, and so do the finished tasks whose results
died with it, without using up their one retry.

Under fork, the pool forks one worker as it starts. Its other workers (once work waits
for them, or ``worker_pids()`` asks) and every replacement are forked from a
single-threaded fork server (fork_server.py), never from the pool's threads.

Backpressure: with ``max_pending=N``, ``submit`` blocks while N tasks are unfinished,
except on the pool's own threads, where most done-callbacks run and must never block.
(A callback also runs on the thread that cancels or terminates, or that adds it to a
finished future: a submit there may block.) In asyncio code
``await pool.submit_async(fn, *args)`` waits for room without blocking the loop.

Extensions to ``ProcessPoolExecutor``: ``map(chunksize="auto")``; ``map`` is lazy
and bounded; ``max_pending``; ``task_timeout`` (counted from the task's start);
``cancel()`` of a running task; ``max_tasks_per_child`` with every start method;
``max_memory_per_child``; ``trace()``; ``stats()``; ``terminate()``. From Python
3.14: ``map(buffersize=)``, ``terminate_workers()``, ``kill_workers()``.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FuturesTimeoutError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from helpers.core import config
from helpers.core.trace import TaskRecord
from helpers.pool import worker_process
from helpers.pool.errors import (
    PoolTerminated,
    RemoteTraceback,
    TaskTimeout,
    WorkerCrashed,
    WorkerInitError,
    describe_exit,
)
from helpers.pool.futures import TaskFuture
from helpers.pool.ledger import STOPPED, Ledger, State, Task, Worker, open_pidfd
from helpers.pool.messages import ProgressBoard
from helpers.pool.stats import PoolStats, summarize
from helpers.pool.threads import (
    TRACE_TASKS,
    CancelHook,
    PoolOptions,
    Receiver,
    Sender,
    Wakeup,
    cancel_pending,
    estimate_key,
    pickle_calls,
    stop_everything,
)

__all__ = ["WorkerPool", "WorkerCrashed", "WorkerInitError", "TaskTimeout", "PoolTerminated",
           "RemoteTraceback", "describe_exit"]

#: Work per chunk that ``map(chunksize="auto")`` aims for (seconds), and the largest chunk.
CHUNK_SECONDS = 0.02
MAX_CHUNK = 1 << 16
#: Windows waits on at most 63 handles; each worker needs two (pipe and process).
WINDOWS_MAX_WORKERS = 30
#: How long ``worker_pids()`` waits for the workers it asked the fork server for.
START_WAIT_SECONDS = 30.0
#: Trace records ``trace()`` returns at most (the newest).
TRACE_LIMIT = TRACE_TASKS

_receivers: weakref.WeakSet[Receiver] = weakref.WeakSet()
_interpreter_exiting = False


def _finish_pending_work_at_exit() -> None:
    """As with ProcessPoolExecutor, the interpreter exits only once pending work is done."""
    global _interpreter_exiting
    _interpreter_exiting = True
    for receiver in list(_receivers):
        with receiver.ledger.lock:
            receiver.ledger.move_to(State.DRAINING)
        receiver.wakeup.wake()
    for receiver in list(_receivers):
        receiver.join()
        receiver.sender.join()


# Runs before the interpreter joins threads, as concurrent.futures' own hook does.
if hasattr(threading, "_register_atexit"):
    threading._register_atexit(_finish_pending_work_at_exit)
else:  # pragma: no cover - Python < 3.9
    atexit.register(_finish_pending_work_at_exit)


class WorkerPool(Executor):
    """A process pool with batching, backpressure, crash recovery and timeouts.

    Arguments are those of ``ProcessPoolExecutor``, plus ``max_pending`` (bound on
    unfinished tasks: ``submit`` blocks beyond it, and ``map`` keeps at most this
    many items in flight, unless given its own bound, ``buffersize``),
    ``task_timeout`` (seconds a task may run, from its start, before its worker is
    killed and the task fails with :class:`TaskTimeout`) and ``max_memory_per_child``
    (bytes: a worker whose resident memory has grown by more than this since it was
    set up, its initializer done, is retired after its batch, and replaced).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: multiprocessing.context.BaseContext | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
        max_pending: int | None = None,
        task_timeout: float | None = None,
        max_memory_per_child: int | None = None,
    ) -> None:
        max_workers = _check_max_workers(max_workers)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        for name, value in (("max_tasks_per_child", max_tasks_per_child),
                            ("max_pending", max_pending),
                            ("max_memory_per_child", max_memory_per_child)):
            if value is not None:
                _check_positive_int(name, value)
        if task_timeout is not None and (
            isinstance(task_timeout, bool) or not isinstance(task_timeout, (int, float))
            or not task_timeout > 0
        ):
            raise ValueError(f"task_timeout must be a positive number of seconds, "
                             f"got {task_timeout!r}")
        self._max_workers = max_workers
        self._context = mp_context or config.mp_context()
        self._max_pending = max_pending
        self._ids = itertools.count()
        self._maps: weakref.WeakSet[_MapResults] = weakref.WeakSet()  # maps still being read
        self._ledger = ledger = Ledger(max_workers, max_pending)
        self._board = ProgressBoard(max_workers)
        self._wakeup = Wakeup()
        ledger.wake_receiver = self._wakeup.wake
        self._cancel_hook = CancelHook(ledger, self._board, self._wakeup)
        worker_args = (initializer, tuple(initargs), max_tasks_per_child, max_memory_per_child,
                       idle_spin_seconds())
        self._starter = _WorkerStarter(self._context, self._board, worker_args)
        options = PoolOptions(task_timeout, max_tasks_per_child)
        # The callback runs wherever the garbage collector happens to run: lock-free only.
        pool_ref = weakref.ref(self, lambda _, wakeup=self._wakeup: wakeup.wake_from_finalizer())
        self._sender = Sender(pool_ref, ledger, options, self._wakeup, self._board)
        self._receiver = Receiver(pool_ref, ledger, options, self._wakeup, self._board,
                                  self._sender, self._starter.start, self._starter.close)
        try:
            first = self._starter.first_slots(max_workers)
            ledger.workers.extend(self._starter.start_all(first))
            ledger.unstarted = [slot for slot in range(max_workers) if slot not in first]
            self._sender.start()
            self._receiver.start()
        except BaseException as error:
            self._abandon(error)
            raise BrokenProcessPool(f"WorkerPool could not start: {type(error).__name__}: "
                                    f"{error}") from error
        _receivers.add(self._receiver)

    # --- public API ---

    @property
    def max_workers(self) -> int:
        return self._max_workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; return its Future. Blocks while the pool is full
        (``max_pending``), except on the pool's own threads (done-callbacks)."""
        ledger, sender, key = self._ledger, self._sender, estimate_key(fn)
        with ledger.lock:
            self._wait_for_room()
            if sender.idle_worker() is None:
                return self._submit_locked(fn, args, kwargs, key, 1)
        # A worker is idle and nothing is queued: send the task to it from this thread,
        # one thread hop fewer than through the sender (unless that changed meanwhile).
        try:
            payload = pickle_calls([(fn, args, kwargs)])
        except Exception:
            payload = None  # it will not pickle: the sender's path says why, in its future
        with ledger.lock:
            self._wait_for_room()
            if payload is None:
                return self._submit_locked(fn, args, kwargs, key, 1)
            future = self._new_future(fn, args, kwargs, key, 1)
            worker = sender.book_directly(future.task, len(payload))
            if worker is None:
                ledger.add(future.task)
                return future
        sender.write_booked(worker, payload)
        return future

    async def submit_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await`` a task's result from asyncio code, without ever blocking the event loop.

        When the pool is full (``max_pending``), this waits on the event loop, with no
        thread, until a task finishes; then it submits.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        ledger = self._ledger
        while True:
            with ledger.lock:
                if not ledger.full() or not ledger.accepting():
                    future = self._submit_locked(fn, args, kwargs, estimate_key(fn), 1)
                    break
                room = loop.create_future()
                ledger.add_room_waiter(_wake_on_loop(loop, room))
            await room
        return await asyncio.wrap_future(future)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int | str = 1,
            buffersize: int | None = None) -> Iterator[Any]:
        """Like ``Executor.map``, but lazy and bounded.

        At most ``buffersize`` chunks are in flight (Python 3.14's meaning); without it,
        at most ``max_pending`` items, or else four chunks per worker. The first chunks
        are submitted now, the rest as results are consumed. ``chunksize="auto"``
        starts with single items and grows each chunk until it holds about
        ``CHUNK_SECONDS`` of work, judged from the chunks already done.
        """
        if chunksize != "auto" and (isinstance(chunksize, bool)
                                    or not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f'chunksize must be a positive integer or "auto", got {chunksize!r}')
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int):
                raise TypeError(f"buffersize must be an integer or None, got {buffersize!r}")
            if buffersize < 1:
                raise ValueError(f"buffersize must be None or > 0, got {buffersize}")
        with self._ledger.lock:
            if not self._ledger.accepting():
                self._refuse()
        deadline = None if timeout is None else time.monotonic() + timeout
        results = _MapResults(self, fn, zip(*iterables, strict=False), chunksize, buffersize,
                              deadline)
        results.fill()
        self._maps.add(results)
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; finish (or with ``cancel_futures``, cancel) the pending ones.

        A ``map`` still being read submits the rest of its input first (what
        ``ProcessPoolExecutor.map`` did at once), so reading it after a ``with`` block
        works as it does with the standard pools.
        """
        ledger = self._ledger
        if not self._on_pool_thread():
            for results in list(self._maps):
                results.submit_the_rest()
        with ledger.lock:
            ledger.move_to(State.DRAINING)
            cancelled = []
            if cancel_futures:  # tasks that never started; those sent back after a crash run
                cancelled = [t for t in ledger.pending
                             if not t.dispatched and ledger.settle(t, "cancelled")]
                ledger.pending = deque(t for t in ledger.pending if not t.settled)
        for task in cancelled:
            cancel_pending(task, BrokenProcessPool("cancelled by shutdown(cancel_futures=True)"))
        self._wakeup.wake()
        if wait and not self._on_pool_thread():
            self._receiver.join()
            self._sender.join()

    def terminate(self) -> None:
        """Stop now: cancel pending tasks, kill the workers, fail the running tasks."""
        self._stop_now(PoolTerminated("the pool was terminated"), "kill")
        if not self._on_pool_thread():
            self._receiver.join()
            self._sender.join()

    def terminate_workers(self) -> None:
        """Python 3.14's ``terminate_workers()``: SIGTERM every worker, cancel the queue."""
        self._stop_now(PoolTerminated("the pool's workers were terminated"), "terminate")

    def kill_workers(self) -> None:
        """Python 3.14's ``kill_workers()``: SIGKILL every worker, cancel the queue."""
        self._stop_now(PoolTerminated("the pool's workers were killed"), "kill")

    def trace(self, clear: bool = False) -> list[TaskRecord]:
        """Per-task records (task id, worker, submitted, started, finished), oldest first."""
        with self._ledger.lock:
            batches = list(self._receiver.trace)
            if clear:
                self._receiver.clear_trace()
        records = []
        for pid, task_ids, submitted, started, finished in batches:
            worker = f"pid {pid}"
            for i, task_id in enumerate(task_ids):
                records.append(TaskRecord(task_id, worker, submitted[i], started[i], finished[i]))
        return records[-TRACE_LIMIT:]

    def stats(self) -> PoolStats:
        """Queue wait and run time percentiles, utilisation per worker, and what went wrong."""
        with self._ledger.lock:
            counts = dict(self._ledger.counts)
        return summarize(self.trace(), counts)

    def status(self) -> list[WorkerStatus]:
        """What each worker is doing now: the task it runs (if any), and since when.

        Only the workers started so far: under fork, the pool starts its other workers
        as work arrives (``worker_pids()`` starts them all)."""
        now = time.monotonic()
        with self._ledger.lock:
            statuses = []
            for worker in self._ledger.workers:
                progress = self._board.read(worker.slot)
                running, seconds = None, None
                if worker.batches and progress.seq == worker.batches[0].seq and (
                        0 <= progress.index < len(worker.batches[0].tasks)):
                    running = worker.batches[0].tasks[progress.index].task_id
                    seconds = now - progress.started
                held = sum(len(batch.tasks) for batch in worker.batches)
                statuses.append(WorkerStatus(worker.pid, held, running, seconds))
        return statuses

    def worker_pids(self) -> list[int]:
        """The pids of the current workers. Under fork, the pool starts one worker with
        itself and the others as work waits for them: this starts the rest first and
        waits for them (on the pool's own threads, e.g. in a done-callback, it does
        neither: it lists the workers started so far)."""
        with self._ledger.lock:
            self._wait_for_every_worker()
            return [w.pid for w in self._ledger.workers]

    @property
    def _broken(self) -> str | bool:
        """As the standard executors' ``_broken``: why the pool broke, or False."""
        ledger = self._ledger
        if ledger.state in (State.BROKEN, State.TERMINATED):
            return str(ledger.error)
        return False

    @property
    def state(self) -> State:
        """The pool's state (``ledger.State``): running, draining, stopping, closed..."""
        return self._ledger.state

    def __exit__(self, exc_type, exc_value, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()  # an interrupted cell: stop the work, leave nothing behind
        else:
            self.shutdown(wait=True)
        return False

    def __repr__(self) -> str:
        ledger = self._ledger
        return (f"<WorkerPool {ledger.state.value}, {self._max_workers} workers, "
                f"{ledger.unfinished} unfinished>")

    # --- inside ---

    def _on_pool_thread(self) -> bool:
        current = threading.current_thread()
        return current is self._sender or current is self._receiver

    def _wait_for_every_worker(self) -> None:
        """Under the lock: have the receiver start the slots that never had a worker, and
        wait until it has (not on the pool's own threads: they would wait for themselves)."""
        ledger = self._ledger
        if not (ledger.unstarted or ledger.growing) or self._on_pool_thread():
            return
        ledger.all_wanted = True
        ledger.wake_receiver()
        deadline = time.monotonic() + START_WAIT_SECONDS
        while (ledger.wants_worker() or ledger.growing) and ledger.state not in STOPPED:
            left = deadline - time.monotonic()
            if left <= 0:
                return  # the fork server is stuck: list the workers there are
            ledger.started.wait(left)

    def _refuse(self) -> None:
        ledger = self._ledger
        if ledger.state in (State.BROKEN, State.TERMINATED):
            raise BrokenProcessPool(f"the pool cannot take tasks: {ledger.error}")
        if _interpreter_exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        raise RuntimeError("cannot schedule new futures after shutdown")

    def _wait_for_room(self) -> None:
        """Under the lock: with ``max_pending``, wait while the pool is full (never on the
        pool's own threads: a done-callback must not block them)."""
        ledger = self._ledger
        if ledger.max_pending is not None and not self._on_pool_thread():
            while ledger.full() and ledger.accepting():
                ledger.space.wait()

    def _submit_locked(self, fn: Callable[..., Any], args: tuple, kwargs: dict, key: Any,
                       weight: int) -> Future:
        """Queue a task without waiting for room (``map`` bounds itself)."""
        future = self._new_future(fn, args, kwargs, key, weight)
        self._ledger.add(future.task)
        return future

    def _new_future(self, fn: Callable[..., Any], args: tuple, kwargs: dict, key: Any,
                    weight: int) -> TaskFuture:
        """Under the lock: a future and its task, not on the books yet (refused once the
        pool stops accepting tasks)."""
        if not self._ledger.accepting() or _interpreter_exiting:
            self._refuse()
        future = TaskFuture(self._cancel_hook)
        future.task = Task(next(self._ids), future, fn, args, kwargs, key, weight,
                           time.perf_counter())
        return future

    def _stop_now(self, error: BaseException, how: str) -> None:
        """TERMINATED: cancel the queue, fail the running tasks, ``how`` the workers."""

        def stop(worker: Worker) -> None:
            try:
                getattr(worker.process, how)()  # Process.kill() or Process.terminate()
            except (OSError, ValueError):
                pass  # already gone

        stop_everything(self._ledger, State.TERMINATED, error, self._wakeup, stop)

    def _abandon(self, error: BaseException) -> None:
        """The constructor failed half-way: stop whatever it had started."""
        for worker in self._ledger.workers:
            try:
                worker.process.kill()
                worker.process.join(5)
            except (OSError, ValueError):
                pass
            worker.close_watch()
        self._starter.close()


@dataclass(frozen=True)
class WorkerStatus:
    """One worker, now: its pid, the tasks it holds, the one it runs and for how long."""

    pid: int
    tasks_held: int
    running_task: int | None  # the task's id (as in trace()), or None when idle
    running_seconds: float | None


class _WorkerStarter:
    """Starts workers: forked by the fork server under fork, else by ``mp_context``."""

    def __init__(self, context: multiprocessing.context.BaseContext, board: ProgressBoard,
                 worker_args: tuple[Any, ...]) -> None:
        self.context, self.board, self.worker_args = context, board, worker_args
        self.fork_server = None
        if context.get_start_method() == "fork":
            from helpers.pool.fork_server import ForkServer

            self.fork_server = ForkServer(context, board, worker_args)

    def first_slots(self, max_workers: int) -> list[int]:
        """The slots whose workers the pool starts as it is created: all of them, except
        under fork, where it forks one and the fork server forks the others once work waits
        for them (each process forked at once would delay the first result)."""
        return [0] if self.fork_server is not None else list(range(max_workers))

    def start_all(self, slots: list[int]) -> list[Worker]:
        """The workers of ``slots``, started here as the pool is created (under fork too:
        the pool has no threads of its own yet, see fork_server.py)."""
        return [self.start_here(slot) for slot in slots]

    def start(self, slot: int) -> Worker:
        """A worker for ``slot`` once the pool runs (a replacement, or under fork a slot's
        first worker): from the fork server under fork."""
        if self.fork_server is None:
            return self.start_here(slot)
        process, conn = self.fork_server.start_worker(slot)
        return Worker(slot, process, conn, process.pidfd)

    def start_here(self, slot: int) -> Worker:
        """A worker started by this process, with ``mp_context``."""
        parent_end, child_end = self.context.Pipe(duplex=True)
        self.board.reset(slot)
        process = self.context.Process(
            target=worker_process.worker_main,
            args=(child_end, self.board, slot, *self.worker_args),
            name="WorkerPool-worker", daemon=True,
        )
        process.start()
        child_end.close()
        pidfd = open_pidfd(process.pid)
        if pidfd is not None and process.exitcode is not None:
            os.close(pidfd)  # it was reaped already: the pid may name another process now
            pidfd = None
        return Worker(slot, process, parent_end, pidfd)

    def close(self) -> None:
        if self.fork_server is not None:
            self.fork_server.close()


class _MapResults:
    """One ``map`` call: an iterator over its results, in order, with its chunks in flight.

    Closing it cancels the chunks still in flight (running ones too; a chunk already sent
    to a worker behind another one still runs there, its result dropped); dropping it has
    the pool's receiver thread cancel them.
    """

    def __init__(self, pool: WorkerPool, fn: Callable[..., Any], arguments: Iterator[tuple],
                 chunksize: int | str, buffersize: int | None, deadline: float | None) -> None:
        self.pool, self.fn, self.arguments, self.deadline = pool, fn, arguments, deadline
        self.auto = chunksize == "auto"
        self.size = 1 if self.auto else chunksize
        self.max_chunks = buffersize or 4 * pool.max_workers
        self.max_items = None if buffersize else pool._max_pending
        self.key = object()  # this map's own run-time estimate
        self.in_flight: deque[tuple[Future, int]] = deque()
        self.items_in_flight = 0
        self.exhausted = False
        self.ready: list[Any] = []  # results of the current chunk, last first

    def __iter__(self) -> _MapResults:
        return self

    def __next__(self) -> Any:
        if self.ready:
            return self.ready.pop()  # nothing here keeps a result once it is returned
        if not self.in_flight:
            self.close()
            raise StopIteration
        future, items = self.in_flight[0]
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        try:
            if remaining is not None and remaining <= 0:
                raise FuturesTimeoutError()
            values, seconds = future.result(remaining)
        except BaseException:
            self.close()
            raise
        self.in_flight.popleft()
        self.items_in_flight -= items
        del future
        if self.auto:
            self.size = _next_chunk_size(self.size, len(values), seconds)
        self.fill()
        values.reverse()
        self.ready = values
        return next(self)

    def close(self) -> None:
        """Cancel the chunks still in flight, and forget this map's estimate."""
        in_flight, self.in_flight = self.in_flight, deque()
        self.ready = []
        self.exhausted = True
        for future, _ in in_flight:
            future.cancel()
        if self.key is not None:
            with self.pool._ledger.lock:
                self.pool._ledger.forget_estimate(self.key)
            self.key = None

    def __del__(self) -> None:
        """Dropped unread: hand the chunks in flight to the receiver, which cancels them.

        Not ``close()``: the garbage collector may run this on a thread that holds the
        ledger's lock (an allocation made under it), which ``close()`` would take again
        and wait on for ever. So this takes no lock: a ``SimpleQueue.put`` and a
        lock-free wake-up.
        """
        in_flight, self.in_flight = self.in_flight, deque()
        key, self.key = self.key, None
        if in_flight or key is not None:
            pool = self.pool
            pool._ledger.dropped_maps.put(([future for future, _ in in_flight], key))
            pool._wakeup.wake_from_finalizer()

    def submit_the_rest(self) -> None:
        """The pool is shutting down: submit all the remaining input now."""
        with self.pool._ledger.lock:
            if not self.pool._ledger.accepting():
                return
        self.max_chunks, self.max_items = sys.maxsize, None
        self.fill()

    def chunk_limit(self) -> int:
        if self.max_items is None:
            return self.size
        share = max(1, self.max_items // (2 * self.pool.max_workers))
        return max(1, min(self.size, share))

    def room(self, chunk: int) -> bool:
        """Whether one more chunk of ``chunk`` items fits in the window."""
        if len(self.in_flight) >= self.max_chunks:
            return False
        return (self.max_items is None or not self.in_flight
                or self.items_in_flight + chunk <= self.max_items)

    def fill(self) -> None:
        """Submit chunks until the window is full or the input is exhausted."""
        while not self.exhausted and self.room(self.chunk_limit()):
            chunk = list(itertools.islice(self.arguments, self.chunk_limit()))
            if not chunk:
                self.exhausted = True
                return
            pool = self.pool
            with pool._ledger.lock:
                future = pool._submit_locked(worker_process.run_chunk, (self.fn, chunk), {},
                                             self.key, len(chunk))
            self.in_flight.append((future, len(chunk)))
            self.items_in_flight += len(chunk)


# --- small helpers ---


def idle_spin_seconds() -> float:
    """How long a worker watches its pipe, busy, before it sleeps (see
    ``worker_process.IDLE_SPIN_SECONDS``): 0 where this process may keep only one CPU
    busy (its affinity, or a container's CPU quota), so the worker never spins there."""
    from helpers.core.machine import usable_cpus  # the parent only

    return worker_process.IDLE_SPIN_SECONDS if usable_cpus() > 1 else 0.0


def _check_max_workers(max_workers: int | None) -> int:
    if max_workers is None:
        from helpers.core.machine import usable_cpus  # the parent only

        max_workers = usable_cpus()
        if sys.platform == "win32":
            max_workers = min(max_workers, WINDOWS_MAX_WORKERS)
        return max_workers
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise ValueError(f"max_workers must be an integer greater than 0, got {max_workers!r}")
    if max_workers <= 0:
        raise ValueError(f"max_workers must be greater than 0, got {max_workers}")
    if sys.platform == "win32" and max_workers > WINDOWS_MAX_WORKERS:
        raise ValueError(f"max_workers must be <= {WINDOWS_MAX_WORKERS} on Windows "
                         "(it can wait on at most 63 handles at once), "
                         f"got {max_workers}")
    return max_workers


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _next_chunk_size(size: int, items: int, seconds: float) -> int:
    """The next ``map`` chunk size: aim at CHUNK_SECONDS of work, grow at most 4× a step."""
    if items == 0:
        return size
    per_item = max(seconds / items, 1e-8)
    target = int(CHUNK_SECONDS / per_item)
    return max(1, min(MAX_CHUNK, target, 4 * max(size, items)))


def _wake_on_loop(loop: Any, room: Any) -> Callable[[], None]:
    """A callable for any thread: resolve ``room`` on its event loop (if it still runs)."""

    def set_room() -> None:
        if not room.done():
            room.set_result(None)

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(set_room)
        except RuntimeError:
            pass  # the loop has closed

    return wake
