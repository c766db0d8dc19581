"""WorkerPool: the course's zero-dependency process pool (standard library only).

A ``concurrent.futures.Executor`` that is cheaper per task than the standard library's
pools and survives the faults they do not. Data flow::

    submit(fn, *args) ─► Future (PENDING) ─► _pending deque
                                                │
         sender thread: takes a *batch* of pending tasks for a worker with a free
         slot, pickles it (a task that will not pickle fails alone), writes the
         batch to that worker's pipe
                                                │
        ┌───────────────┬───────────────────────┴──────┐
        ▼ pipe          ▼ pipe                          ▼ pipe
     worker 1        worker 2          …            worker N    run the batch, send
        │               │                               │       the results back
        └───────────────┴──────────────┬────────────────┘
                                       ▼
         receiver thread: waits on every worker's pipe *and* process sentinel,
         resolves futures, records the trace, kills workers whose task overran
         ``task_timeout``, replaces dead and retired workers
                                       │
                                       ▼
    Future (FINISHED) ─► result(), wait(), as_completed(), asyncio.wrap_future()

Why it is fast: every worker has its own pipe, and tiny tasks travel in batches
sized from measured task times (a few milliseconds of work per batch), so the
per-task cost is one Future, a pickle and a dictionary entry. ``map`` sends whole
chunks as single tasks and never makes a Future per item.

Why it survives faults: because each worker has its own pipe, the parent always
knows which tasks a worker holds. When a worker dies (segfault, ``os._exit``,
SIGKILL, memory limit), the task it was running fails with :class:`WorkerCrashed`,
the tasks waiting behind it are sent to another worker, and a replacement starts.
Nothing else breaks. Every submitted task ends resolved.

Backpressure and asyncio: with ``max_pending=N``, ``submit`` *blocks* while N tasks
are unfinished. ``loop.run_in_executor(pool, ...)`` calls ``submit`` on the event
loop's thread, so a full pool would freeze the loop. In asyncio code use
``await pool.submit_async(fn, *args)``, which waits for room in a helper thread, or
bound the work yourself with an ``asyncio.Semaphore(N)`` around ``run_in_executor``.

Extensions to ``ProcessPoolExecutor``: ``map(chunksize="auto")``; ``map`` is lazy
and keeps a bounded number of chunks in flight; ``max_pending``; ``task_timeout``;
``max_tasks_per_child`` with every start method (fork included); ``trace()``;
``terminate()``.
"""

from __future__ import annotations

import atexit
import itertools
import math
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures import TimeoutError as FuturesTimeoutError
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from helpers.core import config
from helpers.core.trace import TaskRecord
from helpers.pool import worker_process

__all__ = ["WorkerPool", "WorkerCrashed", "WorkerInitError", "TaskTimeout", "PoolTerminated"]

#: Work per batch that tiny tasks are grouped into (seconds).
BATCH_SECONDS = 0.005
MAX_BATCH = 512
#: Work per chunk that ``map(chunksize="auto")`` aims for (seconds).
CHUNK_SECONDS = 0.02
MAX_CHUNK = 1 << 16
#: Tasks shorter than this get a second batch queued in the worker's pipe.
PREFETCH_BELOW_SECONDS = 0.01
#: Windows waits on at most 63 handles; each worker needs two (pipe and process).
WINDOWS_MAX_WORKERS = 30
#: Trace records ``trace()`` returns at most (the newest); the pool keeps the
#: newest TRACE_BATCHES batches of them (a batch holds 1 to MAX_BATCH tasks).
TRACE_LIMIT = 100_000
TRACE_BATCHES = 20_000


# --- errors ---


class WorkerCrashed(BrokenProcessPool):
    """A worker process died while it held this task. The pool replaced it and goes on."""

    def __init__(self, pid: int, exitcode: int | None, tasks: int) -> None:
        self.pid, self.exitcode, self.tasks = pid, exitcode, tasks
        super().__init__(
            f"worker pid {pid} {describe_exit(exitcode)} while it held {tasks} task(s); "
            "the pool started a replacement"
        )

    def __reduce__(self):
        return type(self), (self.pid, self.exitcode, self.tasks)


class WorkerInitError(BrokenProcessPool):
    """The pool's initializer raised in a worker; the pool cannot run tasks."""


class TaskTimeout(TimeoutError):
    """The task ran past ``task_timeout``; its worker was killed and replaced."""


class PoolTerminated(RuntimeError):
    """The pool was terminated (``terminate()``, or an interrupted ``with`` block)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (set as ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def describe_exit(exitcode: int | None) -> str:
    """'was killed by signal SIGKILL', 'exited with code 3', ..."""
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"was killed by signal {name}"
    return f"exited with code {exitcode}"


# --- the parent side ---


class _Task:
    __slots__ = ("task_id", "future", "fn", "args", "kwargs", "submitted", "alone", "dispatched")

    def __init__(self, task_id, future, fn, args, kwargs, submitted):
        self.task_id, self.future = task_id, future
        self.fn, self.args, self.kwargs, self.submitted = fn, args, kwargs, submitted
        self.alone = False  # send in a batch of its own (its batch could not be unpickled)
        self.dispatched = False  # sent to a worker before (and sent back to the queue)


class _Worker:
    """The parent's view of one worker process and what it holds."""

    def __init__(self, process, conn) -> None:
        self.process = process
        self.pid: int = process.pid
        self.conn = conn
        self.batches: deque[list[_Task]] = deque()  # in flight, oldest first
        self.sent = 0  # tasks sent, for max_tasks_per_child
        self.deadline: float | None = None  # task_timeout deadline of the running task


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _shut_down_live_pools() -> None:
    """As with ProcessPoolExecutor, the interpreter exits only once pending work is done."""
    for pool in list(_live_pools):
        if pool._receiver.is_alive():
            pool.shutdown(wait=True)


class WorkerPool(Executor):
    """A process pool with batching, backpressure, crash recovery and timeouts.

    Arguments are those of ``ProcessPoolExecutor``, plus ``max_pending`` (bound on
    unfinished tasks: ``submit`` blocks beyond it, ``map`` keeps at most this many
    chunks in flight) and ``task_timeout`` (seconds a task may run before its worker
    is killed and the task fails with :class:`TaskTimeout`).
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
    ) -> None:
        if max_workers is None:
            from helpers.core.machine import usable_cpus  # the parent only

            max_workers = usable_cpus()
        _check_positive_int("max_workers", max_workers)
        if sys.platform == "win32" and max_workers > WINDOWS_MAX_WORKERS:
            raise ValueError(f"max_workers must be at most {WINDOWS_MAX_WORKERS} on Windows "
                             "(it can wait on at most 63 handles at once), "
                             f"got {max_workers}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            _check_positive_int("max_tasks_per_child", max_tasks_per_child)
        if max_pending is not None:
            _check_positive_int("max_pending", max_pending)
        if task_timeout is not None and (
            isinstance(task_timeout, bool) or not isinstance(task_timeout, (int, float))
            or not task_timeout > 0
        ):
            raise ValueError(f"task_timeout must be a positive number of seconds, "
                             f"got {task_timeout!r}")
        self._max_workers = max_workers
        self._context = mp_context or config.mp_context()
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._max_pending = max_pending
        self._task_timeout = task_timeout

        self._lock = threading.Lock()
        self._work_or_room = threading.Condition(self._lock)  # sender waits for work and room
        self._space = threading.Condition(self._lock)  # submit waits (max_pending)
        self._sender_waiting = False
        self._pending: deque[_Task] = deque()
        self._unfinished = 0  # submitted and not yet resolved
        self._ids = itertools.count()
        self._workers: list[_Worker] = []
        self._task_seconds: dict[str, float] = {}  # moving average run time per function
        self._trace: deque[tuple] = deque(maxlen=TRACE_BATCHES)  # one entry per batch
        self._shutdown = False
        self._broken: BrokenProcessPool | None = None
        self._wakeup_reader, self._wakeup_writer = multiprocessing.Pipe(duplex=False)

        for _ in range(max_workers):
            self._workers.append(self._start_worker())
        self._sender = threading.Thread(target=self._send_loop, name="WorkerPool-sender",
                                        daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop,
                                          name="WorkerPool-receiver", daemon=True)
        self._sender.start()
        self._receiver.start()
        _live_pools.add(self)

    # --- public API ---

    @property
    def max_workers(self) -> int:
        return self._max_workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; return its Future. Blocks while the pool is full
        (``max_pending``)."""
        with self._lock:
            if self._max_pending is not None:
                while self._unfinished >= self._max_pending and not self._closed():
                    self._space.wait()
            return self._submit_locked(fn, args, kwargs)

    async def submit_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await`` a task's result from asyncio code, without ever blocking the event loop.

        When the pool is full (``max_pending``), ``submit`` blocks; this waits for room
        in a helper thread instead, so the loop keeps serving other coroutines.
        """
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        future = await loop.run_in_executor(
            None, functools.partial(self.submit, fn, *args, **kwargs))
        return await asyncio.wrap_future(future)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int | str = 1) -> Iterator[Any]:
        """Like ``Executor.map``, but lazy and bounded: at most a few chunks are in flight.

        ``chunksize="auto"`` starts with single items and grows each chunk until it
        holds about ``CHUNK_SECONDS`` of work, judged from the chunks already done.
        """
        if chunksize != "auto" and (isinstance(chunksize, bool)
                                    or not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f'chunksize must be a positive integer or "auto", got {chunksize!r}')
        with self._lock:
            if self._closed():
                raise RuntimeError("cannot schedule new futures after shutdown")
        deadline = None if timeout is None else time.monotonic() + timeout
        window = self._max_pending or 4 * self._max_workers
        return self._map_results(fn, zip(*iterables, strict=False), deadline, chunksize, window)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; finish (or with ``cancel_futures``, cancel) the pending ones."""
        cancelled = []
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._pending:
                    cancelled.append(self._pending.popleft())
                self._unfinished -= len(cancelled)
            self._work_or_room.notify_all()
            self._space.notify_all()
        for task in cancelled:
            _cancel(task, CancelledError("cancelled by shutdown(cancel_futures=True)"))
        self._wake_receiver()
        if wait:
            self._sender.join()
            self._receiver.join()

    def terminate(self) -> None:
        """Stop now: cancel pending tasks, kill the workers, fail the running tasks."""
        with self._lock:
            if self._broken is None:
                self._broken = PoolTerminated("the pool was terminated")
        self._fail_everything()
        self.shutdown(wait=True)

    def trace(self, clear: bool = False) -> list[TaskRecord]:
        """Per-task records (task id, worker, submitted, started, finished), oldest first."""
        with self._lock:
            batches = list(self._trace)
            if clear:
                self._trace.clear()
        records = []
        for pid, task_ids, submitted, started, finished in batches:
            worker = f"pid {pid}"
            for i, task_id in enumerate(task_ids):
                records.append(TaskRecord(task_id, worker, submitted[i], started[i], finished[i]))
        return records[-TRACE_LIMIT:]

    def worker_pids(self) -> list[int]:
        """The pids of the current workers."""
        with self._lock:
            return [w.pid for w in self._workers]

    def __exit__(self, exc_type, exc_value, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()  # an interrupted cell: stop the work, leave nothing behind
        else:
            self.shutdown(wait=True)
        return False

    # --- submitting ---

    def _closed(self) -> bool:
        return self._shutdown or self._broken is not None

    def _refuse(self) -> None:
        if self._broken is not None:
            raise BrokenProcessPool(f"the pool cannot take tasks: {self._broken}")
        raise RuntimeError("cannot schedule new futures after shutdown")

    def _submit_locked(self, fn, args, kwargs) -> Future:
        """Queue a task without waiting for room (``map`` bounds itself)."""
        if self._shutdown or self._broken is not None:
            self._refuse()
        future: Future = Future()
        self._pending.append(_Task(next(self._ids), future, fn, args, kwargs,
                                   time.perf_counter()))
        self._unfinished += 1
        if self._sender_waiting:
            self._sender_waiting = False
            self._work_or_room.notify()
        return future

    def _map_results(self, fn, arguments, deadline, chunksize, window) -> Iterator[Any]:
        size = 1 if chunksize == "auto" else chunksize
        in_flight: deque[Future] = deque()

        def submit_chunk() -> bool:
            chunk = list(itertools.islice(arguments, size))
            if not chunk:
                return False
            with self._lock:
                in_flight.append(self._submit_locked(worker_process.run_chunk, (fn, chunk), {}))
            return True

        try:
            while len(in_flight) < window and submit_chunk():
                pass
            while in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise FuturesTimeoutError()
                results, seconds = in_flight.popleft().result(remaining)
                if chunksize == "auto":
                    size = _next_chunk_size(size, len(results), seconds)
                submit_chunk()
                yield from results
        finally:
            for future in in_flight:
                future.cancel()

    # --- the sender thread ---

    def _send_loop(self) -> None:
        try:
            self._send_batches()
        except BaseException as error:  # a bug here must not leave futures pending for ever
            self._internal_error("sender", error)

    def _send_batches(self) -> None:
        while True:
            with self._lock:
                while True:
                    # Quit only when no worker holds work: a worker that dies sends the
                    # batches queued behind its task back to the queue, to be sent again.
                    if not self._pending and self._closed() and self._idle():
                        self._wake_receiver()  # it may be waiting for the queue to empty
                        return
                    worker = self._worker_with_room()
                    if self._pending and worker is not None:
                        break
                    self._sender_waiting = True
                    self._work_or_room.wait()
                    self._sender_waiting = False
                batch = self._take_batch(worker)
                if self._task_timeout is not None and batch:
                    worker.deadline = time.monotonic() + self._task_timeout
            if batch:
                self._send_batch(worker, batch)
                if self._task_timeout is not None:
                    self._wake_receiver()  # a new deadline to watch

    def _expected_seconds(self) -> float | None:
        """How long the next pending task's function usually runs (None: not seen yet)."""
        return self._task_seconds.get(_function_name(self._pending[0].fn))

    def _prefetch(self) -> int:
        """Batches a worker may hold: two for short tasks, so it never waits for the next."""
        if self._task_timeout is not None or not self._pending:
            return 1
        expected = self._expected_seconds()
        return 2 if expected is None or expected < PREFETCH_BELOW_SECONDS else 1

    def _worker_with_room(self) -> _Worker | None:
        """The least busy live worker that may take another batch, or None."""
        depth = self._prefetch()
        best = None
        for worker in self._workers:
            if len(worker.batches) >= depth or not self._has_quota(worker):
                continue
            if best is None or len(worker.batches) < len(best.batches):
                best = worker
        return best

    def _has_quota(self, worker: _Worker) -> bool:
        return self._max_tasks_per_child is None or worker.sent < self._max_tasks_per_child

    def _batch_limit(self, worker: _Worker) -> int:
        expected = self._expected_seconds()
        if self._task_timeout is not None or expected is None:
            limit = 1
        else:
            limit = max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(expected, 1e-7))))
        idle = sum(1 for w in self._workers if not w.batches and self._has_quota(w))
        limit = min(limit, math.ceil(len(self._pending) / max(idle, 1)))
        if self._max_tasks_per_child is not None:
            limit = min(limit, self._max_tasks_per_child - worker.sent)
        return max(1, limit)

    def _take_batch(self, worker: _Worker) -> list[_Task]:
        """Move up to a batch of pending tasks to ``worker``'s in-flight list."""
        batch = []
        limit = self._batch_limit(worker)
        head = self._pending[0]
        if head.alone:
            limit = 1
        while self._pending and len(batch) < limit and (
                self._pending[0] is head
                or (self._pending[0].fn is head.fn and not self._pending[0].alone)):
            task = self._pending.popleft()
            if task.dispatched or task.future.set_running_or_notify_cancel():
                task.dispatched = True
                batch.append(task)
            else:
                self._unfinished -= 1  # cancelled by the caller before it started
                self._space.notify()
        if batch:
            worker.batches.append(batch)
            worker.sent += len(batch)
        return batch

    def _send_batch(self, worker: _Worker, batch: list[_Task]) -> None:
        try:
            payload = _pickle_tasks(batch)
            unpicklable = []
        except Exception:  # find the culprits; only they fail
            unpicklable = []
            for task in batch:
                try:
                    _pickle_tasks([task])
                except Exception as error:
                    unpicklable.append((task, error))
        if unpicklable:
            with self._lock:
                for task, _ in unpicklable:
                    batch.remove(task)
                if not batch:
                    worker.batches.remove(batch)
                worker.sent -= len(unpicklable)
            for task, error in unpicklable:
                self._resolve(task, False, TypeError(
                    f"the task could not be pickled to send to a worker: "
                    f"{type(error).__name__}: {error}"), None)
            if not batch:
                return
            payload = _pickle_tasks(batch)
        try:
            worker.conn.send_bytes(payload)
        except OSError:
            pass  # the worker died; the receiver sees its sentinel and deals with the batch

    # --- the receiver thread ---

    def _receive_loop(self) -> None:
        try:
            self._receive_results()
        except BaseException as error:  # a bug here must not leave futures pending for ever
            self._internal_error("receiver", error)
            for worker in self._workers:
                worker.process.join(timeout=5)
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    def _internal_error(self, thread: str, error: BaseException) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = BrokenProcessPool(
                    f"WorkerPool's {thread} thread failed: {type(error).__name__}: {error}")
                self._broken.__cause__ = error
            held = [task for w in self._workers for batch in w.batches for task in batch]
            for worker in self._workers:
                worker.batches.clear()
        self._fail_everything()
        for task in held:
            if not task.future.done():
                self._resolve(task, False, self._broken, None)

    def _receive_results(self) -> None:
        stopping = False
        while True:
            with self._lock:
                if not stopping and self._closed() and not self._pending and self._idle():
                    stopping = True
                    for worker in self._workers:
                        _send_quietly(worker.conn, pickle.dumps(None))
                if stopping and not self._workers:
                    break
                closing = self._closed()
                by_conn = {w.conn: w for w in self._workers}
                by_sentinel = {w.process.sentinel: w for w in self._workers}
                deadlines = [w.deadline for w in self._workers if w.deadline is not None]
            timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
            if closing and not stopping:  # look again soon, whatever wakes us
                timeout = min(timeout, 0.1) if timeout is not None else 0.1
            ready = multiprocessing.connection.wait(
                [*by_conn, *by_sentinel, self._wakeup_reader], timeout)
            for item in ready:
                if item is self._wakeup_reader:
                    _drain(self._wakeup_reader)
                elif item in by_conn:
                    self._receive_from(by_conn[item])
            for item in ready:
                if item in by_sentinel:
                    self._worker_exited(by_sentinel[item], stopping)
            self._kill_overdue_workers(stopping)

    def _idle(self) -> bool:
        return all(not w.batches for w in self._workers)

    def _receive_from(self, worker: _Worker) -> bool:
        """Read one message from ``worker``; False if its pipe is closed."""
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        try:
            message = pickle.loads(data)
        except Exception as error:  # e.g. an exception class the parent lacks
            with self._lock:
                batch = worker.batches.popleft()
                worker.deadline = None
            failure = RuntimeError(f"the worker's results could not be unpickled here: "
                                   f"{type(error).__name__}: {error}")
            for task in batch:
                self._resolve(task, False, failure, None)
            return True
        if isinstance(message, tuple) and message[0] == "init-failed":
            _, summary, text = message
            error = WorkerInitError(f"the pool's initializer raised in a worker: {summary}")
            error.__cause__ = RemoteTraceback(text)
            with self._lock:
                if self._broken is None:
                    self._broken = error
            self._fail_everything()
            return True
        with self._lock:
            batch = worker.batches.popleft()
            worker.deadline = None
            if isinstance(message, tuple) and message[0] == "unreadable":
                worker.sent -= len(batch)
                if len(batch) > 1:  # try each task on its own to find the one at fault
                    for task in reversed(batch):
                        task.alone = True
                        self._pending.appendleft(task)
                    self._work_or_room.notify()
                    return True
        if isinstance(message, tuple):
            self._resolve(batch[0], False, TypeError(
                f"the task could not be unpickled in the worker: {message[1]}. A function "
                "defined in a notebook or in __main__ cannot be sent to spawn or forkserver "
                "workers: define it in a module and import it."), None)
            return True
        self._trace.append((worker.pid, [t.task_id for t in batch], [t.submitted for t in batch],
                            message.started, message.finished))
        name = _function_name(batch[0].fn)
        errors = message.errors
        for index, (task, value) in enumerate(zip(batch, message.values, strict=True)):
            if index in errors:
                _settle(task, False, *errors[index])
            else:
                task.future.set_result(value)
            task.fn = task.args = task.kwargs = None
        run = (message.finished[-1] - message.started[0]) / len(batch)
        before = self._task_seconds.get(name)
        self._task_seconds[name] = run if before is None else 0.5 * before + 0.5 * run
        self._count_finished(len(batch))
        return True

    def _resolve(self, task: _Task, ok: bool, value: Any, text: str | None) -> None:
        """Finish one task's future (outside the lock: callbacks may call submit)."""
        _settle(task, ok, value, text)
        self._count_finished(1)

    def _count_finished(self, count: int) -> None:
        with self._lock:
            self._unfinished -= count
            if self._max_pending is not None:
                self._space.notify(count)
            if self._sender_waiting:
                self._sender_waiting = False
                self._work_or_room.notify()

    def _worker_exited(self, worker: _Worker, stopping: bool) -> None:
        """A worker's process ended: collect what it sent, fail or re-queue what it held."""
        while worker.conn.poll() and self._receive_from(worker):
            pass
        worker.process.join(timeout=5)
        worker.conn.close()
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            held = list(worker.batches)
            worker.batches.clear()
            broken = self._broken
            if broken is not None:  # the pool is going down: fail all it held
                failed = [task for batch in held for task in batch]
            else:
                failed = held[0] if held else []
                for batch in reversed(held[1:]):  # never started: send them elsewhere
                    for task in reversed(batch):
                        self._pending.appendleft(task)
                if not stopping:
                    self._workers.append(self._start_worker())
            self._work_or_room.notify_all()
        error = broken or WorkerCrashed(worker.pid, worker.process.exitcode, len(failed))
        for task in failed:
            self._resolve(task, False, error, None)

    def _kill_overdue_workers(self, stopping: bool) -> None:
        if self._task_timeout is None:
            return
        now = time.monotonic()
        with self._lock:
            overdue = [w for w in self._workers if w.deadline is not None and w.deadline <= now]
            for worker in overdue:
                self._workers.remove(worker)
                if not stopping and self._broken is None:
                    self._workers.append(self._start_worker())
            self._work_or_room.notify_all()
        for worker in overdue:
            worker.process.kill()
            worker.process.join(timeout=5)
            worker.conn.close()
            for batch in worker.batches:
                for task in batch:
                    self._resolve(task, False, TaskTimeout(
                        f"the task ran longer than task_timeout={self._task_timeout} s; "
                        f"its worker (pid {worker.pid}) was killed and replaced"), None)

    # --- workers ---

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_process.worker_main,
            args=(child_end, self._initializer, self._initargs, self._max_tasks_per_child),
            name="WorkerPool-worker", daemon=True,
        )
        process.start()
        child_end.close()
        return _Worker(process, parent_end)

    def _fail_everything(self) -> None:
        """Broken or terminated: cancel pending tasks, kill workers, fail held tasks."""
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            self._unfinished -= len(pending)
            workers = list(self._workers)
            self._work_or_room.notify_all()
            self._space.notify_all()
            error = self._broken
        for task in pending:
            if isinstance(error, PoolTerminated):
                _cancel(task, error)
            elif task.dispatched or task.future.set_running_or_notify_cancel():
                task.future.set_exception(error)
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
        self._wake_receiver()

    def _wake_receiver(self) -> None:
        try:
            self._wakeup_writer.send_bytes(b"")
        except OSError:
            pass  # the receiver has finished

    def __repr__(self) -> str:
        state = ("broken" if self._broken else "shut down" if self._shutdown else "running")
        return f"<WorkerPool {state}, {self._max_workers} workers, {self._unfinished} unfinished>"


# --- small helpers ---


def _function_name(fn: Callable[..., Any]) -> str:
    """A name for a task's function, for its run-time estimate."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _pickle_tasks(batch: list[_Task]) -> bytes:
    return pickle.dumps([(t.fn, t.args, t.kwargs) for t in batch],
                        pickle.HIGHEST_PROTOCOL)


def _cancel(task: _Task, error: BaseException) -> None:
    """Cancel a task that never ran; one sent back to the queue after a crash gets ``error``.

    ``set_running_or_notify_cancel`` after ``cancel`` is what wakes ``wait()`` and
    ``as_completed()``, as the standard executors do.
    """
    if task.future.cancel():
        task.future.set_running_or_notify_cancel()
    else:
        task.future.set_exception(error)


def _settle(task: _Task, ok: bool, value: Any, text: str | None) -> None:
    """Set a task's future to its result or exception, and let go of its arguments."""
    if ok:
        task.future.set_result(value)
    else:
        if text is not None:
            value.__cause__ = RemoteTraceback(text)
        task.future.set_exception(value)
    task.fn = task.args = task.kwargs = None


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


def _send_quietly(conn, data: bytes) -> None:
    try:
        conn.send_bytes(data)
    except OSError:
        pass


def _drain(conn) -> None:
    while conn.poll():
        try:
            conn.recv_bytes()
        except (EOFError, OSError):
            return
