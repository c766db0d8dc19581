"""The pool's two helper threads, and what each one alone may do.

``Sender``    takes pending tasks in batches, pickles them (outside the lock: a task
              that will not pickle fails alone), hands each batch to a worker with
              room, and closes the pipes of workers that have gone. One shortcut
              past it: a ``submit()`` that finds an idle worker and nothing queued
              books its task to that worker and writes it there itself
              (``Sender.book_directly``), one thread hop fewer for a lone task.
              Whoever writes to a worker's pipe, or closes it, holds that worker's
              ``write_lock``, taken under the ledger's lock when the batch is booked,
              so batches reach a worker in the order they were numbered.
``Receiver``  waits on every worker's pipe and process; it alone reads the pipes,
              settles finished tasks, starts workers once the pool runs
              (replacements, and under fork the workers started on demand), kills
              the workers of overrun or cancelled tasks, joins the ones that have
              gone, and moves the pool through draining, stopping and closed.
              (Elsewhere: the pool starts its first workers as it is created;
              ``shutdown()`` and ``terminate()`` change the state on the caller's
              thread, and ``terminate()`` signals the workers there; a helper thread
              that hits a bug breaks the pool from that thread.)

Both hold only a *weak* reference to the ``WorkerPool`` (as CPython's executor
manager thread does): a pool that the program drops is collected, and its threads
notice, finish the queued work and stop its workers. They share everything else
through the :class:`~helpers.pool.ledger.Ledger`, under its lock; futures are set
outside the lock, after the task has been counted out, because done-callbacks may
submit more work. Finalisers, which the garbage collector may run on any thread while
it holds any lock, take none: ``Wakeup.wake_from_finalizer()`` and
``Ledger.dropped_maps`` (a ``SimpleQueue``) hand their work to the receiver.

Standard library only.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import pickle
import queue
import selectors
import sys
import threading
import time
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from helpers.pool.errors import TaskTimeout, WorkerCrashed, WorkerInitError, with_remote_traceback
from helpers.pool.ledger import (
    STOPPED,
    Ledger,
    SentBatch,
    State,
    Task,
    Worker,
    join_process,
)
from helpers.pool.messages import (
    FINISHED,
    READING,
    STARTING,
    Batch,
    BatchResults,
    InitFailed,
    Progress,
    ProgressBoard,
    Stop,
    Unreadable,
)

#: Work per batch that tiny tasks are grouped into (seconds), and the most tasks in one.
BATCH_SECONDS = 0.005
MAX_BATCH = 512
#: Tasks shorter than this get a second batch queued in the worker's pipe...
PREFETCH_BELOW_SECONDS = 0.01
#: ...but only a small one: a big batch waits for an idle worker instead of blocking the
#: sender on a full pipe (a pipe holds about 64 KiB to 200 KiB).
PREFETCH_MAX_BYTES = 32 * 1024
#: How often the receiver looks at the progress board while a task_timeout applies and
#: a worker has been sent a task it has not started yet (seconds).
START_POLL_SECONDS = 0.02
#: The trace keeps the batches holding the newest TRACE_TASKS tasks (about 13 MB).
TRACE_TASKS = 100_000
#: A worker due to exit (sent Stop once the pool has drained, SIGTERM by
#: ``terminate_workers()``, or done with its last batch under max_tasks_per_child or
#: max_memory_per_child) that is still alive this long after is sent SIGKILL: a task may
#: have ignored SIGTERM or left a non-daemon thread, and a forked worker can hang on its
#: way out, flushing a ``sys.stdout`` whose lock another thread of the parent held when
#: it forked. Without it, ``shutdown()``, a dropped pool and the exit hook would wait for
#: ever, and a retired worker would never be replaced (seconds; workers that exit
#: normally take milliseconds).
STOP_GRACE_SECONDS = 5.0
#: How long the receiver waits for a worker whose pipe closed to exit, before it kills it.
REAP_SECONDS = 5.0
#: Workers in a row that may exit before they are set up (no batch settled in between)
#: before the pool breaks instead of starting another: under spawn a main module that
#: cannot be imported again (a script read from standard input), or an initializer
#: that exits the process, would otherwise have the pool start workers for ever.
MAX_FAILED_STARTS = 3


class PoolOptions:
    """What the threads need to know of the pool's settings."""

    def __init__(self, task_timeout: float | None, max_tasks_per_child: int | None) -> None:
        self.task_timeout = task_timeout
        self.max_tasks_per_child = max_tasks_per_child


class Wakeup:
    """A pipe that wakes the receiver from its wait (``WaitSet.wait``).

    ``wake()`` takes a lock (it sends at most one message until the receiver clears
    it). A finaliser (the pool's weak-reference callback, a dropped ``map``'s
    ``__del__``) must call ``wake_from_finalizer()`` instead, which takes no lock: the
    garbage collector can run a finaliser on any thread, at any allocation, even one
    made while that thread holds this lock or the ledger's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._pending = False
        self.reader, self._writer = multiprocessing.Pipe(duplex=False)

    def wake(self) -> None:
        with self._lock:
            if not self._closed and not self._pending:
                self._pending = True
                self._send()

    def wake_from_finalizer(self) -> None:
        """Lock-free ``wake()``: one empty message (a single 4-byte write, so writers never
        interleave), at worst one more than needed."""
        if not self._closed:
            self._send()

    def _send(self) -> None:
        try:
            self._writer.send_bytes(b"")
        except (OSError, ValueError):
            pass  # the receiver has closed its end: there is no one left to wake

    def clear(self) -> None:
        """Take the wake-up the receiver's wait found (one message; another, left by a
        finaliser, makes the next wait return at once). No ``poll()`` first: see
        ``Receiver.read_message``."""
        with self._lock:
            self.reader.recv_bytes()
            self._pending = False

    def close(self) -> None:
        """Close the reading end. The writing end stays open until this object is
        collected, so a lock-free write can never land on a descriptor number that has
        been closed and reused meanwhile; with no reader, it fails (EPIPE), quietly."""
        with self._lock:
            self._closed = True
            self.reader.close()


#: What ``multiprocessing.connection.wait`` uses too: poll, or select where there is none.
_PollSelector = getattr(selectors, "PollSelector", selectors.SelectSelector)


class WaitSet:
    """What the receiver waits on, kept from one wait to the next.

    ``multiprocessing.connection.wait`` builds a poll set, registers every object and
    throws the set away on each call: about 15 µs, twice on a lone task's round trip.
    This keeps one poll set and builds a new one only when the objects change (a worker
    started or gone). ``poll`` holds no state in the kernel, so a descriptor closed
    after its worker left the set can do no harm. On Windows, whose pipe and process
    handles are not file descriptors, it is ``multiprocessing.connection.wait`` itself.
    """

    def __init__(self) -> None:
        self._objects: list[Any] = []
        self._selector: selectors.BaseSelector | None = None

    def wait(self, objects: list[Any], timeout: float | None) -> list[Any]:
        """The objects that are ready (readable, or ended), after at most ``timeout`` s."""
        if sys.platform == "win32":
            return multiprocessing.connection.wait(objects, timeout)
        if self._selector is None or objects != self._objects:
            self.close()
            self._selector = _PollSelector()
            for item in objects:
                self._selector.register(item, selectors.EVENT_READ)
            self._objects = objects
        return [key.fileobj for key, _ in self._selector.select(timeout)]

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None


# --- settling tasks (outside the lock) ---


def finish(task: Task, ok: bool, value: Any, traceback: str | None = None) -> None:
    """Set the future of a task the caller has just settled, and let go of its arguments."""
    task.fn = task.args = task.kwargs = None
    future = task.future
    future.task = None
    if ok:
        future.set_result(value)
    else:
        future.set_exception(with_remote_traceback(value, traceback))


def cancel_pending(task: Task, error: BaseException) -> None:
    """Cancel a settled task that never ran, waking ``wait()`` and ``as_completed()``.

    A task sent back to the queue after its worker died is already RUNNING and cannot
    be cancelled: it gets ``error``.
    """
    task.fn = task.args = task.kwargs = None
    future = task.future
    future.task = None
    if Future.cancel(future):
        future.set_running_or_notify_cancel()
    elif not future.done():
        future.set_exception(error)


def estimate_key(fn: Callable[..., Any]) -> Any:
    """What a task's run-time estimate is filed under: its function (or callable's type)."""
    fn = getattr(fn, "__func__", fn)
    if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType)):
        return fn
    return type(fn)


def stop_everything(ledger: Ledger, state: State, error: BaseException, wakeup: Wakeup,
                    signal_workers: Callable[[Worker], None] | None = None) -> None:
    """Move to BROKEN or TERMINATED: cancel the queue, fail what workers hold, kill them.

    Queued tasks are cancelled when the pool was terminated, and fail with ``error``
    when it broke (their result will never come, and a cancelled future would hide why).
    """
    with ledger.lock:
        if not ledger.move_to(state):
            return
        ledger.error = error
        queued = [t for t in [*ledger.pending, *ledger.in_hand] if ledger.settle(
            t, "cancelled" if state is State.TERMINATED else "failed")]
        ledger.pending.clear()
        held = [t for w in ledger.workers for b in w.batches for t in b.tasks
                if ledger.settle(t, "failed")]
        workers = list(ledger.workers)
    for task in queued:
        if state is State.TERMINATED:
            cancel_pending(task, error)
        else:
            finish(task, False, error)
    for task in held:
        finish(task, False, error)
    for worker in workers:
        (signal_workers or kill_quietly)(worker)
    wakeup.wake()


def kill_quietly(worker: Worker) -> None:
    try:
        worker.process.kill()
    except (OSError, ValueError):
        pass  # already gone, or already joined and closed


def reap(worker: Worker) -> None:
    """Wait for a worker whose pipe closed (or whose process ended) to exit; a worker
    still alive after REAP_SECONDS (it closed its pipe, or hangs on its way out) is
    killed, so that none outlives the pool."""
    join_process(worker.process, REAP_SECONDS)
    if worker.process.exitcode is None:
        kill_quietly(worker)
        join_process(worker.process, REAP_SECONDS)


def min_or_none(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --- the sender ---


class Sender(threading.Thread):
    """Moves pending tasks to workers, and closes workers' pipes (a lone task may be
    written by the submitting thread instead: see ``book_directly``)."""

    def __init__(self, pool_ref: weakref.ref, ledger: Ledger, options: PoolOptions,
                 wakeup: Wakeup, board: ProgressBoard) -> None:
        super().__init__(name="WorkerPool-sender", daemon=True)
        self.pool_ref, self.ledger, self.options, self.wakeup = pool_ref, ledger, options, wakeup
        self.board = board
        self.receiver_done = False

    def run(self) -> None:
        try:
            self.send_until_closed()
        except BaseException as error:  # a bug here must not leave futures pending for ever
            report_internal_error(self.ledger, "sender", error, self.wakeup)
            self.close_everything()

    def send_until_closed(self) -> None:
        ledger = self.ledger
        while True:
            with ledger.lock:
                while True:
                    to_stop, ledger.to_stop = ledger.to_stop, []
                    to_close, ledger.to_close = ledger.to_close, []
                    tasks = [] if to_stop or to_close else self.take_batch()
                    if to_stop or to_close or tasks:
                        break
                    if self.receiver_done:
                        return
                    # With tasks queued, it waits for a worker with room: a submit()
                    # need not wake it (at thousands of submits a second, that is a
                    # wasted thread switch each).
                    ledger.sender_needs_work = not ledger.pending
                    ledger.work_or_room.wait()
            for worker in to_stop:
                with worker.write_lock:
                    send_quietly(worker.conn, pickle.dumps(Stop()))
            for worker in to_close:
                with worker.write_lock:
                    worker.conn.close()
            if tasks:
                self.send(tasks)

    def close_everything(self) -> None:
        with self.ledger.lock:
            workers = [*self.ledger.to_close, *self.ledger.workers]
            self.ledger.to_close = []
        for worker in workers:
            with worker.write_lock:
                try:
                    worker.conn.close()
                except OSError:
                    pass

    # --- choosing what to send ---

    def take_batch(self) -> list[Task]:
        """Under the lock: move up to one batch of pending tasks into the sender's hands."""
        ledger = self.ledger
        if not ledger.pending or ledger.state in STOPPED or self.worker_with_room() is None:
            return []
        batch: list[Task] = []
        while ledger.pending and not batch:
            head = ledger.pending[0]
            limit = 1 if head.alone else self.batch_limit(head.key)
            while ledger.pending and len(batch) < limit:
                task = ledger.pending[0]
                if task is not head and (task.alone or task.key != head.key):
                    break
                ledger.pending.popleft()
                if task.settled:
                    continue  # cancelled while it waited
                if task.dispatched or task.future.set_running_or_notify_cancel():
                    task.dispatched = True
                    batch.append(task)
                else:
                    ledger.settle(task, "cancelled")  # cancelled by the caller before it ran
                    task.fn = task.args = task.kwargs = None
        ledger.in_hand = batch
        return batch

    def depth(self, key: Any) -> int:
        """Batches a worker may hold: two for short tasks, so it never waits for the next."""
        if self.options.task_timeout is not None:
            return 1
        expected = self.ledger.expected_seconds(key)
        return 2 if expected is None or expected < PREFETCH_BELOW_SECONDS else 1

    def worker_with_room(self, payload_bytes: int = 0, tasks: int = 1) -> Worker | None:
        """The least busy live worker that may take another batch now, or None."""
        ledger = self.ledger
        key = ledger.pending[0].key if ledger.pending else (
            ledger.in_hand[0].key if ledger.in_hand else None)
        depth = 1 if payload_bytes > PREFETCH_MAX_BYTES else self.depth(key)
        best = None
        now = time.monotonic()
        for worker in ledger.workers:
            if (len(worker.batches) >= depth or worker.kill_reason or worker.retiring
                    or worker.stop_sent or not self.has_quota(worker, tasks)):
                continue
            if worker.batches and self.busy_for(worker, now) > PREFETCH_BELOW_SECONDS:
                continue  # its task is not a short one after all: no batch behind it
            if worker.batches and ledger.workers_on_their_way():
                continue  # a new worker is on its way: the batch waits for it
            if best is None or len(worker.batches) < len(best.batches):
                best = worker
        return best

    def busy_for(self, worker: Worker, now: float) -> float:
        """Seconds the worker has been on its current task (0.0 if it has not started)."""
        progress = self.board.read(worker.slot)
        if progress.seq == worker.batches[0].seq and progress.index >= 0:
            return now - progress.started
        return 0.0

    def has_quota(self, worker: Worker, tasks: int = 1) -> bool:
        quota = self.options.max_tasks_per_child
        return quota is None or worker.sent + tasks <= quota

    def batch_limit(self, key: Any) -> int:
        ledger = self.ledger
        expected = ledger.expected_seconds(key)
        if self.options.task_timeout is not None or expected is None:
            limit = 1
        else:
            limit = max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(expected, 1e-7))))
        idle = sum(1 for w in ledger.workers if not w.batches and self.has_quota(w))
        idle += ledger.workers_on_their_way()  # under fork: they take their share too
        limit = min(limit, math.ceil(len(ledger.pending) / max(idle, 1)))
        quota = self.options.max_tasks_per_child
        if quota is not None:
            limit = min(limit, max((quota - w.sent for w in ledger.workers), default=1))
        return max(1, limit)

    # --- sending ---

    def send(self, tasks: list[Task]) -> None:
        """Pickle the batch (outside the lock), give it to a worker, write it to its pipe."""
        ledger = self.ledger
        payload, unpicklable = pickle_batch(tasks)
        with ledger.lock:
            # Only those still on the books: one may have been cancelled while we pickled.
            unpicklable = [(t, e) for t, e in unpicklable if ledger.settle(t, "failed")]
            sendable = [t for t in tasks if not t.settled]
            worker = None
            while sendable and worker is None:
                if ledger.state in STOPPED:
                    break
                worker = self.worker_with_room(len(payload), len(sendable))
                if worker is None:
                    ledger.work_or_room.wait()
                    sendable = [t for t in sendable if not t.settled]
            if worker is not None and sendable:
                book(worker, sendable)
            failed = [] if worker is not None else [
                t for t in sendable if ledger.settle(t, "failed")]
            error = ledger.error
            ledger.in_hand = []
        if worker is not None and sendable:  # written first: done-callbacks may wait on it
            if len(sendable) < len(tasks):
                payload, _ = pickle_batch(sendable)
            self.write_booked(worker, payload)
        for task, problem in unpicklable:
            finish(task, False, problem)
        for task in failed:
            finish(task, False, error or BrokenProcessPool("the pool stopped"))

    def write_booked(self, worker: Worker, payload: bytes) -> None:
        """Write a booked batch to its worker, whose write lock the caller holds; release it."""
        try:
            send_quietly(worker.conn, payload)
        finally:
            worker.write_lock.release()
        if self.options.task_timeout is not None:
            self.wakeup.wake()  # a task to watch

    # --- the direct path (called by submit(), on the submitting thread) ---

    def idle_worker(self) -> Worker | None:
        """Under the lock: a worker waiting for work when nothing is queued or in hand
        (a lone task may then go to it directly), or None."""
        ledger = self.ledger
        if ledger.pending or ledger.in_hand or ledger.state is not State.RUNNING:
            return None
        for worker in ledger.workers:
            if (not worker.batches and not worker.kill_reason and not worker.retiring
                    and not worker.stop_sent and self.has_quota(worker)):
                return worker
        return None

    def book_directly(self, task: Task, payload_bytes: int) -> Worker | None:
        """Under the lock: book a new task (pickled by the caller) to an idle worker and
        return it with its write lock held, for ``write_booked``; or None, when the
        queue or the workers changed meanwhile (the caller queues the task instead)."""
        worker = self.idle_worker()
        if worker is None or payload_bytes > PREFETCH_MAX_BYTES:
            return None
        task.future.set_running_or_notify_cancel()  # new: nobody could cancel it yet
        task.dispatched = True
        self.ledger.count_in(task)
        book(worker, [task])
        return worker


def book(worker: Worker, tasks: list[Task]) -> None:
    """Under the lock: number a batch for ``worker``, count it as held by it, and take the
    worker's write lock (the caller writes the batch and releases it), so that batches
    are written in the order they were numbered.

    Waiting for that lock under the ledger's lock cannot deadlock: its holder is writing
    one batch, to a worker that reads it, and needs the ledger's lock for nothing.
    """
    worker.last_seq += 1
    worker.batches.append(SentBatch(worker.last_seq, tasks))
    worker.sent += len(tasks)
    worker.write_lock.acquire()


def pickle_batch(tasks: list[Task]) -> tuple[bytes, list[tuple[Task, BaseException]]]:
    """The batch's pickle, and the tasks that would not pickle with the error each raised."""
    try:
        return _dumps(tasks), []
    except BaseException:
        pass
    unpicklable = []
    for task in tasks:
        try:
            _dumps([task])
        except BaseException as error:
            error.add_note("(raised while pickling the task to send it to a worker process)")
            unpicklable.append((task, error))
    bad = {id(task) for task, _ in unpicklable}
    good = [task for task in tasks if id(task) not in bad]
    return (_dumps(good) if good else b""), unpicklable


def _dumps(tasks: list[Task]) -> bytes:
    return pickle_calls([(t.fn, t.args, t.kwargs) for t in tasks])


def pickle_calls(calls: list[tuple[Callable[..., Any], tuple, dict]]) -> bytes:
    """The message a worker receives: a Batch of (function, args, kwargs)."""
    return pickle.dumps(Batch(calls), pickle.HIGHEST_PROTOCOL)


def send_quietly(conn, data: bytes) -> None:
    try:
        conn.send_bytes(data)
    except (OSError, ValueError):
        pass  # the worker has died: the receiver sees it and deals with what it held


# --- the receiver ---


class Receiver(threading.Thread):
    """Reads results, watches workers, replaces the dead, moves the pool's state."""

    def __init__(self, pool_ref: weakref.ref, ledger: Ledger, options: PoolOptions,
                 wakeup: Wakeup, board: ProgressBoard, sender: Sender,
                 start_worker: Callable[[int], Worker], close_starter: Callable[[], None]
                 ) -> None:
        super().__init__(name="WorkerPool-receiver", daemon=True)
        self.pool_ref, self.ledger, self.options, self.wakeup = pool_ref, ledger, options, wakeup
        self.board, self.sender = board, sender
        self.start_worker, self.close_starter = start_worker, close_starter
        self.trace: deque[tuple] = deque()  # one entry per batch, oldest first
        self.traced_tasks = 0
        self.waiting = WaitSet()

    def run(self) -> None:
        try:
            self.receive_until_closed()
        except BaseException as error:  # a bug here must not leave futures pending for ever
            report_internal_error(self.ledger, "receiver", error, self.wakeup)
            for worker in list(self.ledger.workers):
                try:
                    kill_quietly(worker)
                    worker.process.join(5)
                except BaseException:  # e.g. the fork server is gone: nothing left to ask
                    pass
        finally:
            self.waiting.close()
            self.close_starter()
            with self.ledger.lock:
                self.ledger.to_close.extend(self.ledger.workers)
                for worker in self.ledger.workers:
                    worker.close_watch()
                self.ledger.workers.clear()
                self.sender.receiver_done = True
                self.ledger.work_or_room.notify_all()
            self.wakeup.close()

    def receive_until_closed(self) -> None:
        ledger = self.ledger
        while True:
            self.cancel_dropped_maps()
            with ledger.lock:
                self.next_state()
                if ledger.state in STOPPED and not ledger.workers and not ledger.starting:
                    return
                by_conn = {w.conn: w for w in ledger.workers}
                by_sentinel = {w.watch: w for w in ledger.workers if w.watch is not None}
                to_kill = [w for w in ledger.workers if w.kill_reason and not w.stop_sent]
                to_kill.extend(self.past_stop_grace())
                timeout = min_or_none(self.next_deadline(), self.next_stop_deadline())
                new_slot = self.slot_to_start()
            for worker in to_kill:
                kill_quietly(worker)
            if new_slot is not None:
                self.replace(new_slot, first=True)
                continue  # the new worker's pipe joins the wait
            ready = self.waiting.wait([*by_conn, *by_sentinel, self.wakeup.reader], timeout)
            gone: list[Worker] = []
            for item in ready:
                if item is self.wakeup.reader:
                    self.wakeup.clear()
                elif item in by_conn and not self.read_message(by_conn[item]):
                    gone.append(by_conn[item])
                elif item in by_sentinel:
                    gone.append(by_sentinel[item])
            for worker in dict.fromkeys(gone):
                self.worker_gone(worker)
            self.kill_overdue()

    # --- states ---

    def next_state(self) -> None:
        """Under the lock: DRAINING once dropped; STOPPING once drained; CLOSED once stopped."""
        ledger = self.ledger
        if ledger.state is State.RUNNING and self.pool_ref() is None:
            ledger.move_to(State.DRAINING)  # the program dropped the pool
        if ledger.state is State.DRAINING and ledger.idle() and not ledger.starting:
            ledger.move_to(State.STOPPING)
        if ledger.state is State.STOPPING:
            for worker in ledger.workers:
                if not worker.stop_sent:
                    worker.stop_sent = True
                    ledger.to_stop.append(worker)
                    ledger.work_or_room.notify()  # the sender sends the Stop
            if not ledger.workers:
                ledger.move_to(State.CLOSED)

    def cancel_dropped_maps(self) -> None:
        """Do what a dropped ``map``'s finaliser handed over (it may take no lock itself):
        cancel its chunks still in flight, and forget its run-time estimate."""
        ledger = self.ledger
        while True:
            try:
                futures, key = ledger.dropped_maps.get_nowait()
            except queue.Empty:
                return
            for future in futures:
                future.cancel()
            if key is not None:
                with ledger.lock:
                    ledger.forget_estimate(key)

    def past_stop_grace(self) -> list[Worker]:
        """Under the lock: workers due to exit whose grace period has run out.

        Every worker due to exit gets STOP_GRACE_SECONDS; then it is sent SIGKILL, once.
        Due to exit: a retiring worker, once its last batch is back (``settle_batch``
        starts its clock), and every worker of a pool that is STOPPING (it was sent Stop),
        BROKEN or TERMINATED (it was signalled).
        """
        ledger = self.ledger
        stopping = ledger.state is State.STOPPING or ledger.state in STOPPED
        now = time.monotonic()
        overdue = []
        for worker in ledger.workers:
            if worker.stop_deadline is None:
                if stopping:
                    worker.stop_deadline = now + STOP_GRACE_SECONDS
            elif not worker.force_killed and worker.stop_deadline <= now:
                worker.force_killed = True
                overdue.append(worker)
        return overdue

    def next_stop_deadline(self) -> float | None:
        """Under the lock: seconds until a worker's stop grace period runs out (None: none)."""
        deadlines = [w.stop_deadline for w in self.ledger.workers
                     if w.stop_deadline is not None and not w.force_killed]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    # --- results ---

    def read_message(self, worker: Worker) -> bool:
        """Read the message the wait found on ``worker``'s pipe; False once it is closed.

        One message a wait, with no ``poll()`` before it: ``Connection.poll`` builds and
        drops a poll set on each call, as ``multiprocessing.connection.wait`` does, and a
        second message waiting makes the next wait return at once.
        """
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return False
        self.handle(worker, data)
        return True

    def read_messages(self, worker: Worker) -> bool:
        """Read every message waiting on ``worker``'s pipe; False once the pipe is closed.

        For a worker that has gone (``worker_gone``): it polls before each read, because a
        grandchild its task forked may hold the pipe open, and a plain read would then wait
        for ever for a message that will not come.
        """
        try:
            while worker.conn.poll():
                self.handle(worker, worker.conn.recv_bytes())
        except (EOFError, OSError):
            return False
        return True

    def handle(self, worker: Worker, data: bytes) -> None:
        try:
            message = pickle.loads(data)
        except BaseException as error:  # e.g. an exception class the parent cannot import
            self.results_unreadable(worker, error)
            return
        if isinstance(message, BatchResults):
            self.settle_batch(worker, message)
        elif isinstance(message, Unreadable):
            self.batch_unreadable(worker, message)
        elif isinstance(message, InitFailed):
            # The worker exits right after it says so: let it finish first (as under
            # ProcessPoolExecutor), so what its initializer logged has been flushed by the
            # time the pool reports broken.
            worker.process.join(5)
            error = WorkerInitError(f"the pool's initializer raised in a worker: "
                                    f"{message.summary}")
            stop_everything(self.ledger, State.BROKEN,
                            with_remote_traceback(error, message.traceback), self.wakeup)
        else:
            raise TypeError(f"unexpected message from worker pid {worker.pid}: {message!r}")

    def settle_batch(self, worker: Worker, message: BatchResults) -> None:
        ledger = self.ledger
        with ledger.lock:
            batch = worker.batches.popleft()
            ledger.wake_sender_for_room()  # the worker has room, for tasks waiting to be sent
            if batch.seq != message.seq:
                raise RuntimeError(f"worker pid {worker.pid} sent results for batch "
                                   f"{message.seq}, expected {batch.seq}")
            ledger.failed_starts = 0
            worker.retiring = worker.retiring or message.retiring or (
                not worker.batches and not self.sender.has_quota(worker))
            if worker.retiring and worker.stop_deadline is None:
                worker.stop_deadline = time.monotonic() + STOP_GRACE_SECONDS  # it exits now
            tasks = batch.tasks
            errors = message.errors
            # Its result came back before the kill landed: it still ran past task_timeout.
            overran = overran_task(batch, worker.kill_reason, worker.kill_target)
            if overran is not None and not ledger.settle(overran, "timed_out"):
                overran = None
            outcomes = ledger.settle_batch(tasks, errors)
            self.record_trace(worker.pid, tasks, message)
            ledger.record_run(tasks[0].key, (message.finished[-1] - message.started[0])
                              / len(tasks))
        if overran is not None:
            finish(overran, False, self.crash_error(worker))
        values = message.values
        for index, task in enumerate(tasks):
            if outcomes[index]:
                if index in errors:
                    finish(task, False, *errors[index])
                else:
                    finish(task, True, values[index])
            values[index] = None  # the caller's future holds the result; we let go

    def record_trace(self, pid: int, tasks: list[Task], message: BatchResults) -> None:
        """Under the lock: keep the batch's times; drop the oldest past TRACE_TASKS."""
        self.trace.append((pid, [t.task_id for t in tasks], [t.submitted for t in tasks],
                           message.started, message.finished))
        self.traced_tasks += len(tasks)
        while self.traced_tasks > TRACE_TASKS and len(self.trace) > 1:
            self.traced_tasks -= len(self.trace.popleft()[1])

    def clear_trace(self) -> None:
        self.trace.clear()
        self.traced_tasks = 0

    def batch_unreadable(self, worker: Worker, message: Unreadable) -> None:
        """The worker could not unpickle the batch: split it to find the task at fault."""
        ledger = self.ledger
        with ledger.lock:
            batch = worker.batches.popleft()
            ledger.work_or_room.notify()
            worker.sent -= len(batch.tasks)
            if len(batch.tasks) > 1:
                for task in batch.tasks:
                    task.alone = True
                ledger.requeue_front(batch.tasks)
                return
            task = batch.tasks[0]
            if not ledger.settle(task, "failed"):
                return
        error = BrokenProcessPool(
            f"the task could not be unpickled in the worker: {message.summary}")
        error.add_note("A function defined in a notebook or in __main__ cannot be sent to "
                       "spawn or forkserver workers, nor, under fork, to workers forked "
                       "before it was defined: define it in a module and import it.")
        finish(task, False, error, message.traceback)

    def results_unreadable(self, worker: Worker, error: BaseException) -> None:
        """A batch's results could not be unpickled here: fail (or re-run alone) its tasks."""
        ledger = self.ledger
        with ledger.lock:
            batch = worker.batches.popleft()
            ledger.work_or_room.notify()
            if len(batch.tasks) > 1 and not any(t.retried for t in batch.tasks):
                for task in batch.tasks:
                    task.alone = task.retried = True
                ledger.requeue_front(batch.tasks)
                return
            failed = [t for t in batch.tasks if ledger.settle(t, "failed")]
        for task in failed:
            problem = BrokenProcessPool(f"the task's result could not be unpickled in the "
                                        f"parent: {type(error).__name__}: {error}")
            problem.__cause__ = error
            finish(task, False, problem)

    # --- workers that end ---

    def worker_gone(self, worker: Worker) -> None:
        """A worker's pipe closed or its process ended: settle what it held, replace it."""
        self.read_messages(worker)  # whatever it sent before it went
        reap(worker)
        ledger = self.ledger
        with ledger.lock:
            if worker not in ledger.workers:
                return
            ledger.workers.remove(worker)
            ledger.to_close.append(worker)
            worker.close_watch()
            held, worker.batches = list(worker.batches), deque()
            failed: list[tuple[Task, BaseException]] = []
            if ledger.state in (State.BROKEN, State.TERMINATED):
                error = ledger.error
                failed = [(t, error) for b in held for t in b.tasks if ledger.settle(t, "failed")]
            else:
                progress = self.board.read(worker.slot)
                if progress.index == STARTING and not (worker.kill_reason or worker.stop_sent):
                    ledger.failed_starts += 1
                rerun = []
                for position, batch in enumerate(held):
                    if position == 0:
                        failing, lost_twice, again = split_batch(
                            batch, progress, worker.kill_reason, worker.kill_target)
                        rerun.extend(again)
                        failed.extend((task, self.crash_error(worker)) for task in failing)
                        failed.extend((task, self.lost_result_error(worker))
                                      for task in lost_twice)
                    else:
                        rerun.extend(batch.tasks)  # never started
                failed = [(t, e) for t, e in failed
                          if ledger.settle(t, "timed_out" if isinstance(e, TaskTimeout)
                                           else "crashed")]
                ledger.requeue_front(rerun)
            broken = None
            if ledger.failed_starts >= MAX_FAILED_STARTS:
                broken = self.start_up_error(worker)
            replace = broken is None and (ledger.state is State.RUNNING or (
                ledger.state is State.DRAINING and not ledger.idle()))
            if replace:
                ledger.starting += 1
                retired = worker.retiring or (not held and worker.process.exitcode == 0)
                ledger.counts["workers_retired" if retired else "workers_replaced"] += 1
            ledger.work_or_room.notify_all()
        for task, error in failed:
            finish(task, False, error)
        if broken is not None:
            stop_everything(ledger, State.BROKEN, broken, self.wakeup)
        if replace:
            self.replace(worker.slot)

    def start_up_error(self, worker: Worker) -> BrokenProcessPool:
        """Why the pool breaks after MAX_FAILED_STARTS workers died while setting up."""
        return BrokenProcessPool(
            f"{self.ledger.failed_starts} workers in a row exited before they were set up "
            f"(the last, pid {worker.pid}, with exit code {worker.process.exitcode}), so the "
            "pool stopped starting them. A worker started by spawn or forkserver imports "
            "the program's main module first: a script read from standard input, or one "
            "that fails to import in a fresh process, cannot work (its traceback is on the "
            "standard error stream); an initializer that ends the process does the same.")

    def crash_error(self, worker: Worker) -> BaseException:
        if worker.kill_reason == "timeout":
            return TaskTimeout(f"the task ran longer than task_timeout="
                               f"{self.options.task_timeout} s; its worker (pid {worker.pid}) "
                               "was killed and replaced")
        return WorkerCrashed(worker.pid, worker.process.exitcode)

    def lost_result_error(self, worker: Worker) -> BaseException:
        """For a task run again once already, whose result died with ``worker`` again."""
        return WorkerCrashed(worker.pid, worker.process.exitcode, result_lost=True)

    def slot_to_start(self) -> int | None:
        """Under the lock: a slot that never had a worker and should get one now (under
        fork, the pool starts its other workers once work waits for them), or None."""
        ledger = self.ledger
        if not ledger.wants_worker():
            return None
        ledger.starting += 1
        ledger.growing += 1
        return ledger.unstarted.pop(0)

    def replace(self, slot: int, first: bool = False) -> None:
        """Start a worker in ``slot`` (outside the lock: under spawn this takes a while);
        ``first``: the slot's first worker, not a replacement."""
        ledger = self.ledger
        try:
            worker = self.start_worker(slot)
        except BaseException as error:
            why = f"{type(error).__name__}: {error}"
            with ledger.lock:
                ledger.starting -= 1
                if first:
                    ledger.growing -= 1
                # A slot's first worker that cannot be forked (EAGAIN: too many processes)
                # leaves the pool running on the workers it has: no task is lost.
                runs_on = first and isinstance(error, Exception) and bool(ledger.workers)
                if runs_on:
                    ledger.start_errors.append(f"slot {slot}: {why}")
                    ledger.work_or_room.notify_all()
                    ledger.started.notify_all()
            if runs_on:
                warnings.warn(f"WorkerPool could not start a worker ({why}): it runs with "
                              "one worker fewer", RuntimeWarning, stacklevel=1)
                return
            what = "a worker" if first else "a replacement worker"
            broken = BrokenProcessPool(f"could not start {what}: {why}")
            broken.__cause__ = error
            stop_everything(ledger, State.BROKEN, broken, self.wakeup)
            return
        with ledger.lock:
            ledger.starting -= 1
            if first:
                ledger.growing -= 1
            ledger.workers.append(worker)
            if ledger.state in STOPPED:
                worker.kill_reason = "stopped"
            ledger.work_or_room.notify_all()
            ledger.started.notify_all()

    # --- timeouts ---

    def next_deadline(self) -> float | None:
        """Under the lock: seconds until the next task_timeout deadline (None: none)."""
        timeout = self.options.task_timeout
        if timeout is None:
            return None
        now = time.monotonic()
        wait = None
        for worker in self.ledger.workers:
            if not worker.batches or worker.kill_reason:
                continue
            progress = self.board.read(worker.slot)
            if progress.seq == worker.batches[0].seq and progress.index >= 0:
                left = max(0.0, progress.started + timeout - now)
            else:
                left = START_POLL_SECONDS  # sent but not started: look again soon
            wait = left if wait is None else min(wait, left)
        return wait

    def kill_overdue(self) -> None:
        timeout = self.options.task_timeout
        if timeout is None:
            return
        now = time.monotonic()
        overdue = []
        with self.ledger.lock:
            for worker in self.ledger.workers:
                if not worker.batches or worker.kill_reason:
                    continue
                progress = self.board.read(worker.slot)
                if (progress.seq == worker.batches[0].seq and progress.index >= 0
                        and progress.started + timeout <= now):
                    worker.kill_reason = "timeout"
                    worker.kill_target = (progress.seq, progress.index)
                    overdue.append(worker)
        for worker in overdue:
            kill_quietly(worker)


def overran_task(batch: SentBatch, kill_reason: str | None,
                 kill_target: tuple[int, int] | None) -> Task | None:
    """The task of ``batch`` that a ``task_timeout`` kill was sent to stop, if any.

    ``kill_target`` is the (batch, index) the receiver saw overrunning when it decided
    to kill; by the time the kill lands the worker may have finished that task, or its
    whole batch.
    """
    if kill_reason != "timeout" or kill_target is None or kill_target[0] != batch.seq:
        return None
    return batch.tasks[kill_target[1]]


def split_batch(batch: SentBatch, progress: Progress, kill_reason: str | None,
                kill_target: tuple[int, int] | None
                ) -> tuple[list[Task], list[Task], list[Task]]:
    """A dead worker's current batch: (the tasks that fail: the one it was running, or
    the one that overran; the tasks it finished that had been run again once already,
    which fail too; the tasks to run again).

    From the worker's progress slot: tasks it never started go back to the queue;
    the task it was running fails; tasks it finished but whose results died with it
    run again, once, each alone (a task run again once already fails instead). A worker
    that dies while it unpickles a batch of one task was running that task: it fails.

    When the pool killed the worker itself (``kill_reason``: a task was cancelled or ran
    past ``task_timeout``), only that task fails (a cancelled one is settled already):
    the one that overran fails even if it finished as the kill landed (``overran_task``).
    A task the kill interrupted instead runs again, and the finished tasks whose results
    died run again without using up their one retry: the kill was not their doing.
    """
    tasks = batch.tasks
    if progress.seq != batch.seq:
        return [], [], list(tasks)  # it never started this batch
    if progress.index in (READING, FINISHED):
        if len(tasks) == 1 and progress.index == READING:
            running, finished, after = tasks[0], [], []  # unpickling its one task: running it
        else:
            finished, running, after = (tasks if progress.index == FINISHED else []), None, (
                [] if progress.index == FINISHED else tasks)
        for task in after:
            task.alone = True
    else:
        finished = tasks[:progress.index]
        running = tasks[progress.index]
        after = tasks[progress.index + 1:]
    overran = overran_task(batch, kill_reason, kill_target)
    failed, again, lost_twice = [], [], []
    for task in finished:
        if task is overran:
            failed.append(task)
        elif kill_reason in ("timeout", "cancelled"):
            task.alone = True  # lost to the pool's own kill: its retry stays unused
            again.append(task)
        elif task.retried:
            lost_twice.append(task)
        else:
            task.alone = task.retried = True
            again.append(task)
    if running is not None:
        interrupted = ((kill_reason == "cancelled" and not running.settled)
                       or (kill_reason == "timeout" and running is not overran))
        if interrupted:
            running.alone = True  # killed to stop another task: this one runs again
            again.append(running)
        else:
            failed.append(running)
    return failed, lost_twice, [*again, *after]


def report_internal_error(ledger: Ledger, thread: str, error: BaseException,
                          wakeup: Wakeup) -> None:
    """A bug in a helper thread: break the pool, so that no future stays pending for ever."""
    broken = BrokenProcessPool(f"WorkerPool's {thread} thread failed: "
                               f"{type(error).__name__}: {error}")
    broken.__cause__ = error
    stop_everything(ledger, State.BROKEN, broken, wakeup)


class CancelHook:
    """What ``TaskFuture.cancel()`` calls: take the task off the books, and when its
    worker is running it, have the receiver kill that worker (it is replaced; nothing
    else fails).

    A task sent to a worker behind another one (short tasks are sent ahead, so that a
    worker never waits for its next batch) cannot be taken back: its future is cancelled
    and no longer counts against ``max_pending``, but the worker still runs the function
    when it gets there, and its result is dropped. Killing that worker instead would
    stop the task it is running, which nobody cancelled.
    """

    def __init__(self, ledger: Ledger, board: ProgressBoard, wakeup: Wakeup) -> None:
        self.ledger, self.board, self.wakeup = ledger, board, wakeup

    def __call__(self, future: Any, running: bool) -> bool:
        ledger = self.ledger
        with ledger.lock:
            task = future.task
            if task is None or not ledger.settle(task, "cancelled"):
                return not running  # already finished (or already counted out)
            if not running:  # still queued: the sender will skip it
                future.set_running_or_notify_cancel()
                task.fn = task.args = task.kwargs = None
                return True
            worker, position = ledger.worker_holding(task)
            if (worker is not None and worker.kill_reason is None
                    and self.runs_first(worker, position, task)):
                worker.kill_reason = "cancelled"
        future.mark_cancelled_while_running()
        task.fn = task.args = task.kwargs = None
        future.task = None
        self.wakeup.wake()
        return True

    def runs_first(self, worker: Worker, position: int, task: Task) -> bool:
        """Under the lock: True if ``worker`` runs ``task`` now, or holds nothing else to
        run before it (its current batch is this one task)."""
        if position != 0:
            return False
        batch = worker.batches[0]
        if len(batch.tasks) == 1:
            return True
        progress = self.board.read(worker.slot)
        started = progress.seq == batch.seq and progress.index >= 0
        return started and batch.tasks[progress.index] is task
