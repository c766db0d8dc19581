"""The pool's books: where every unfinished task is, what each worker holds, the state.

One lock guards all of it. The rule that keeps every task accounted for: an
unfinished task is in exactly one place, ::

    pending  ──take──►  in hand (the sender is pickling it)  ──commit──►  a worker's batch
       ▲                                                                     │
       └────────────────── requeue (its worker died before running it) ◄─────┘

and it leaves the books exactly once, through :meth:`Ledger.settle`, which lowers the
unfinished count *before* its future is set. So a done-callback that submits more
work always finds the room it made (joblib's callback does exactly that).

The pool's states, and the only ways between them::

    RUNNING ──shutdown(), pool dropped, interpreter exit──► DRAINING
    DRAINING ──nothing left to run──► STOPPING ──every worker gone──► CLOSED

    RUNNING, DRAINING or STOPPING ──► BROKEN: the initializer failed, a replacement
        could not be started, workers kept dying before they were set up, or a
        helper thread hit a bug
    RUNNING, DRAINING or STOPPING ──► TERMINATED: terminate(), terminate_workers(),
        kill_workers(), Ctrl-C in a ``with`` block

Standard library only.
"""

from __future__ import annotations

import enum
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

#: Run-time estimates the pool keeps at most (one per function, one per running map).
MAX_ESTIMATES = 1000


class State(enum.Enum):
    RUNNING = "running"  # accepting tasks
    DRAINING = "draining"  # no new tasks; the queued and running ones finish
    STOPPING = "stopping"  # nothing left to run; the workers were told to stop
    CLOSED = "closed"  # every worker has exited
    BROKEN = "broken"  # it cannot start working workers, or a helper thread hit a bug
    TERMINATED = "terminated"  # stopped at once: terminate*(), kill_workers(), Ctrl-C


TRANSITIONS: dict[State, set[State]] = {
    State.RUNNING: {State.DRAINING, State.BROKEN, State.TERMINATED},
    State.DRAINING: {State.STOPPING, State.BROKEN, State.TERMINATED},
    State.STOPPING: {State.CLOSED, State.BROKEN, State.TERMINATED},
    State.CLOSED: set(),
    State.BROKEN: set(),
    State.TERMINATED: set(),
}

#: States in which the pool runs no more tasks: workers are being killed or have exited.
STOPPED = {State.CLOSED, State.BROKEN, State.TERMINATED}


class Task:
    """One submitted call (or one ``map`` chunk, which counts as ``weight`` tasks)."""

    __slots__ = ("task_id", "future", "fn", "args", "kwargs", "key", "weight", "submitted",
                 "alone", "retried", "dispatched", "settled")

    def __init__(self, task_id: int, future: Future, fn: Callable[..., Any], args: tuple,
                 kwargs: dict, key: Any, weight: int, submitted: float) -> None:
        self.task_id, self.future = task_id, future
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.key, self.weight, self.submitted = key, weight, submitted
        self.alone = False  # send in a batch of its own (to find which task breaks a batch)
        self.retried = False  # sent again after its worker died with its result unsent
        # (not when the pool killed that worker itself: see threads.split_batch)
        self.dispatched = False  # its future is RUNNING (set when first sent)
        self.settled = False  # counted out of the books (its future is, or is being, set)


class SentBatch:
    """Tasks sent to one worker as one message, numbered per worker."""

    __slots__ = ("seq", "tasks")

    def __init__(self, seq: int, tasks: list[Task]) -> None:
        self.seq, self.tasks = seq, tasks


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3+), or None where there is none.

    It becomes readable when the process exits, whoever else holds its pipes: a
    grandchild that a task forked inherits the worker's pipe *and* the write end of
    ``Process.sentinel``, so neither ends while that grandchild lives.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return pidfd_open(pid)
    except OSError:  # ENOSYS (old kernel, seccomp), ESRCH (already reaped)
        return None


def join_process(process: Any, timeout: float) -> None:
    """``process.join(timeout)`` that also sees a process whose sentinel is held open.

    ``multiprocessing.Process.join`` waits on the sentinel pipe, which a grandchild the
    task forked keeps open; reading ``exitcode`` asks the kernel (waitpid) instead.
    """
    sentinel = getattr(process, "sentinel", None)
    if sentinel is None:  # a fork-server worker: the server waits (with this function)
        process.join(timeout)
        return
    import multiprocessing.connection

    deadline = time.monotonic() + timeout
    while process.exitcode is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        multiprocessing.connection.wait([sentinel], min(left, 0.05))


class Worker:
    """The parent's view of one worker process and what it holds."""

    def __init__(self, slot: int, process: Any, conn: Any, pidfd: int | None = None) -> None:
        self.slot = slot  # its place on the progress board
        self.process = process  # multiprocessing.Process, or fork_server.ForkedWorker
        self.pid: int = process.pid
        self.conn = conn
        # Held by whoever writes to ``conn`` or closes it: the sender, or a submit() that
        # found this worker idle (threads.Sender says when each may).
        self.write_lock = threading.Lock()
        # What the receiver waits on to see the process end (besides its pipe): a pidfd
        # where the platform has one (this object owns it), else the process's sentinel
        # (None for a fork-server worker without a pidfd: its pipe's end-of-file only).
        self.pidfd = pidfd
        self.watch: Any = pidfd if pidfd is not None else process.sentinel
        self.batches: deque[SentBatch] = deque()  # sent, results not back yet; oldest first
        self.sent = 0  # tasks sent, for max_tasks_per_child
        self.last_seq = 0
        self.kill_reason: str | None = None  # "timeout" or "cancelled", once asked to die
        # For a timeout: (batch, task index) of the task that overran; the worker may have
        # finished it and moved on before the kill landed.
        self.kill_target: tuple[int, int] | None = None
        # It exits after its last batch: it said so (max_memory_per_child), or it has run
        # its max_tasks_per_child tasks.
        self.retiring = False
        self.stop_sent = False
        self.stop_deadline: float | None = None  # due to exit: SIGKILL if alive after this
        self.force_killed = False  # the grace period ran out and it was sent SIGKILL

    def close_watch(self) -> None:
        """Close the pidfd (the receiver calls this once the worker is off the books)."""
        pidfd, self.pidfd = self.pidfd, None
        if pidfd is not None:
            self.watch = None
            try:
                os.close(pidfd)
            except OSError:
                pass


class Ledger:
    """Every piece of state the pool's threads share, under one lock."""

    def __init__(self, max_workers: int, max_pending: int | None) -> None:
        self.lock = threading.Lock()
        self.work_or_room = threading.Condition(self.lock)  # the sender waits here
        self.sender_needs_work = True  # it waits with nothing queued: add() must wake it
        self.space = threading.Condition(self.lock)  # blocked submit() calls wait here
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.state = State.RUNNING
        self.error: BaseException | None = None  # why BROKEN or TERMINATED
        self.pending: deque[Task] = deque()
        self.in_hand: list[Task] = []
        self.unfinished = 0  # the weight of the tasks not settled yet
        self.open_tasks = 0  # how many tasks (a map chunk is one) are not settled yet
        self.workers: list[Worker] = []
        self.starting = 0  # workers being started outside the lock (replacements too)
        # Under fork, the slots whose first worker has not started yet (the pool starts
        # one worker at once, the others when work waits for them: see ``wants_worker``),
        # how many of those are starting now, and whether someone asked for them all.
        self.unstarted: list[int] = []
        self.growing = 0
        self.all_wanted = False
        self.start_errors: list[str] = []  # slots left without a worker: a fork failed
        self.started = threading.Condition(self.lock)  # worker_pids() waits here
        self.failed_starts = 0  # workers in a row that exited before they were set up
        self.to_stop: list[Worker] = []  # the sender sends each a Stop
        self.to_close: list[Worker] = []  # workers gone: the sender closes their pipes
        self.estimates: dict[Any, float] = {}  # key -> moving average seconds per task
        self.room_waiters: list[Callable[[], None]] = []  # submit_async calls waiting
        self.wake_receiver: Callable[[], None] = lambda: None  # set by the pool
        # (futures, estimate key) of maps dropped unfinished, for the receiver to cancel:
        # a finaliser puts them here (SimpleQueue.put is safe in one) instead of locking.
        self.dropped_maps: queue.SimpleQueue[tuple[list[Future], Any]] = queue.SimpleQueue()
        self.counts = {"completed": 0, "failed": 0, "crashed": 0, "timed_out": 0,
                       "cancelled": 0, "workers_replaced": 0, "workers_retired": 0}

    # --- states ---

    def move_to(self, state: State) -> bool:
        """Change state if that transition is allowed; wake every waiting thread."""
        if state not in TRANSITIONS[self.state]:
            return False
        self.state = state
        self.work_or_room.notify_all()
        self.space.notify_all()
        self.started.notify_all()
        self._wake_room_waiters()
        return True

    def accepting(self) -> bool:
        return self.state is State.RUNNING

    def idle(self) -> bool:
        """Nothing queued, nothing being sent, no worker holding work.

        A task cancelled while queued stays in ``pending`` until the sender skips it; it
        does not count (``all`` stops at the first live task, so this is cheap).
        """
        return (not self.in_hand and all(not w.batches for w in self.workers)
                and all(task.settled for task in self.pending))

    # --- submitting ---

    def full(self) -> bool:
        return self.max_pending is not None and self.unfinished >= self.max_pending

    def add(self, task: Task) -> None:
        """Queue a task for the sender."""
        self.count_in(task)
        self.pending.append(task)
        if self.sender_needs_work:
            self.work_or_room.notify()

    def count_in(self, task: Task) -> None:
        """Put a task on the books (``add`` queues it too; a direct send books it to a
        worker instead)."""
        self.unfinished += task.weight
        self.open_tasks += 1
        if self.unstarted and self.wants_worker():
            self.wake_receiver()  # it starts the next worker

    def settle(self, task: Task, outcome: str) -> bool:
        """Count ``task`` out of the books; False if it already was (someone else won)."""
        if task.settled:
            return False
        task.settled = True
        self.counts[outcome] += 1
        self._counted_out(task.weight, 1)
        return True

    def settle_batch(self, tasks: list[Task], failed: dict[int, Any]) -> list[bool]:
        """``settle`` for a batch whose results came back (``failed``: the indexes of the
        tasks that raised), waking the waiting threads once, not once per task."""
        settled, weight, errors = [], 0, 0
        for index, task in enumerate(tasks):
            if task.settled:
                settled.append(False)  # cancelled while it ran: someone else counted it out
                continue
            task.settled = True
            settled.append(True)
            weight += task.weight
            errors += index in failed
        self.counts["failed"] += errors
        self.counts["completed"] += sum(settled) - errors
        if weight:
            self._counted_out(weight, sum(settled))
        return settled

    def _counted_out(self, weight: int, tasks: int) -> None:
        """``tasks`` tasks of ``weight`` in all have left the books: wake whoever waits."""
        self.unfinished -= weight
        self.open_tasks -= tasks
        if self.max_pending is not None:
            self.space.notify(weight)
            self._wake_room_waiters()
        self.wake_sender_for_room()  # it may wait to send tasks that just settled
        if self.state is not State.RUNNING:
            self.wake_receiver()  # this may have been the last task it waits for

    def wake_sender_for_room(self) -> None:
        """A worker has room, or tasks left the books: wake the sender only if it holds or
        waits to take tasks (with none, a wake-up would be a wasted thread switch)."""
        if self.pending or self.in_hand:
            self.work_or_room.notify()

    def add_room_waiter(self, wake: Callable[[], None]) -> None:
        self.room_waiters.append(wake)

    def _wake_room_waiters(self) -> None:
        waiters, self.room_waiters = self.room_waiters, []
        for wake in waiters:
            wake()

    # --- estimates ---

    def expected_seconds(self, key: Any) -> float | None:
        return self.estimates.get(key)

    def record_run(self, key: Any, seconds_per_task: float) -> None:
        before = self.estimates.get(key)
        if before is None and len(self.estimates) >= MAX_ESTIMATES:
            self.estimates.pop(next(iter(self.estimates)))
        self.estimates[key] = (seconds_per_task if before is None
                               else 0.5 * before + 0.5 * seconds_per_task)

    def forget_estimate(self, key: Any) -> None:
        self.estimates.pop(key, None)

    # --- workers ---

    def wants_worker(self) -> bool:
        """Should a slot that never had a worker get one now? Yes while the pool runs
        (or drains) and its open tasks (a map chunk is one) outnumber the workers that can
        take them, started or starting, or once ``worker_pids()`` asked for them all."""
        if not self.unstarted or self.state not in (State.RUNNING, State.DRAINING):
            return False
        if self.all_wanted:
            return True
        able = sum(1 for w in self.workers
                   if not (w.retiring or w.kill_reason or w.stop_sent))
        return self.open_tasks > able + self.starting

    def workers_on_their_way(self) -> int:
        """Under fork: workers the pool is starting, or is about to, for work that waits."""
        return self.growing + (1 if self.wants_worker() else 0)

    def worker_holding(self, task: Task) -> tuple[Worker | None, int]:
        """The worker holding ``task``, and the position of its batch (0: the one it runs)."""
        for worker in self.workers:
            for position, batch in enumerate(worker.batches):
                if task in batch.tasks:
                    return worker, position
        return None, -1

    def requeue_front(self, tasks: list[Task]) -> None:
        """Put tasks back at the head of the queue, in order (unsettled ones only)."""
        for task in reversed(tasks):
            if not task.settled:
                self.pending.appendleft(task)
        self.work_or_room.notify()
