"""What the parent and a worker say to each other, and the board each worker writes on.

Every message is one pickle on the worker's own pipe::

    parent ─► worker   Batch(tasks)               run these tasks, in order
                       Stop()                     finish and exit
    worker ─► parent   BatchResults(seq, ...)     results, errors, times, "retiring"
                       Unreadable(seq, ...)       the batch could not be unpickled here
                       InitFailed(...)            the pool's initializer raised

Beside the pipe, each worker has a slot on a shared :class:`ProgressBoard` (three
numbers in shared memory, no message and no lock): which batch it is in, which task
of that batch it is running, and since when. When a worker dies, the parent reads
its slot to know exactly which task it was running: only that task fails, and
``task_timeout`` counts from when the task *started*, not from when it was sent.

Standard library only: worker processes import this module.
"""

from __future__ import annotations

import time
from multiprocessing.heap import BufferWrapper

#: Slot values for "which task is running".
STARTING = -3.0  # batch 0: the worker is not set up yet (its initializer has not returned)
READING = -2.0  # unpickling the batch, no task started yet
FINISHED = -1.0  # every task of the batch has run; sending the results

# The messages are plain classes with ``__slots__``, not dataclasses: every worker imports
# this module before its first task, and ``dataclasses`` (with ``inspect``) adds about
# 10 ms to a spawned worker's start on a 2-core machine. Each pickles as its class and
# its fields (``__reduce__``), which is about twice as fast as the default for
# ``__slots__`` classes: two messages travel on every round trip.


class Record:
    """A plain class with ``__slots__`` whose ``repr`` shows its fields (shortened), for
    debugging and error messages. The messages and ``Progress`` are records."""

    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_shortened(getattr(self, name))}"
                           for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _shortened(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Batch(Record):
    """Tasks for one worker: ``[(fn, args, kwargs), ...]``.

    Both sides number a worker's batches 1, 2, 3... as they are sent and received (one
    pipe keeps them in order), so the number need not travel.
    """

    __slots__ = ("tasks",)

    def __init__(self, tasks: list[tuple[object, tuple[object, ...], dict[str, object]]]) -> None:
        self.tasks = tasks

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return Batch, (self.tasks,)


class Stop(Record):
    """Finish and exit (the pool is closing)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return Stop, ()


class BatchResults(Record):
    """One batch's outcome, column by column (few objects per task)."""

    __slots__ = ("seq", "values", "errors", "started", "finished", "retiring")

    def __init__(self, seq: int, values: list[object] | None = None,
                 errors: dict[int, tuple[BaseException, str]] | None = None,
                 started: list[float] | None = None, finished: list[float] | None = None,
                 retiring: bool = False) -> None:
        self.seq = seq
        self.values = [] if values is None else values  # per task (None where it failed)
        self.errors = {} if errors is None else errors  # index -> (error, its traceback)
        self.started = [] if started is None else started  # perf_counter, per task
        self.finished = [] if finished is None else finished
        self.retiring = retiring  # the worker exits after this batch (max_memory_per_child)

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return BatchResults, (self.seq, self.values, self.errors, self.started,
                              self.finished, self.retiring)


class Unreadable(Record):
    """The batch could not be unpickled in the worker (e.g. a function it cannot import)."""

    __slots__ = ("seq", "summary", "traceback")

    def __init__(self, seq: int, summary: str, traceback: str) -> None:
        self.seq, self.summary, self.traceback = seq, summary, traceback

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return Unreadable, (self.seq, self.summary, self.traceback)


class InitFailed(Record):
    """The pool's initializer raised in the worker; the worker has exited."""

    __slots__ = ("summary", "traceback")

    def __init__(self, summary: str, traceback: str) -> None:
        self.summary, self.traceback = summary, traceback

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return InitFailed, (self.summary, self.traceback)


class Progress(Record):
    """One worker's slot as the parent reads it."""

    __slots__ = ("seq", "index", "started")

    def __init__(self, seq: int, index: int, started: float) -> None:
        self.seq = seq  # the batch the worker is in (0: none yet)
        self.index = index  # the task it is running, or STARTING / READING / FINISHED
        self.started = started  # time.monotonic() when that task (or the reading) began


class ProgressBoard:
    """Three shared doubles per worker slot: batch number, task index, start time.

    A worker writes only its own slot; the parent (or, under fork, the fork server)
    resets a slot before a replacement starts in it, and otherwise only reads. Each number
    is one aligned 8-byte write, so a reader sees either the old or the new value.

    The numbers live in a block of ``multiprocessing``'s shared heap (what ``RawArray``
    uses underneath), seen through a ``memoryview`` of doubles: no ``ctypes`` to import
    in every worker. Pickling it (only while starting a spawn or forkserver worker, as
    with ``RawArray``) sends the block, and the worker maps the same memory.
    """

    FIELDS = 3

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._block = BufferWrapper(8 * self.FIELDS * slots)
        self._numbers = self._block.create_memoryview().cast("d")

    def __getstate__(self) -> tuple[int, BufferWrapper]:
        return self.slots, self._block

    def __setstate__(self, state: tuple[int, BufferWrapper]) -> None:
        self.slots, self._block = state
        self._numbers = self._block.create_memoryview().cast("d")

    def reset(self, slot: int) -> None:
        """Before a worker starts in ``slot``: not set up yet, no batch."""
        base = self.FIELDS * slot
        self._numbers[base + 2] = 0.0
        self._numbers[base + 1] = STARTING
        self._numbers[base] = 0.0

    def ready(self, slot: int) -> None:
        """Worker side: "I am set up, and wait for my first batch"."""
        self.write(slot, 0, FINISHED)

    def write(self, slot: int, seq: int, index: float) -> None:
        """Worker side: "I am at task ``index`` of batch ``seq``, from now"."""
        base = self.FIELDS * slot
        self._numbers[base + 2] = time.monotonic()
        self._numbers[base + 1] = index
        self._numbers[base] = seq

    def read(self, slot: int) -> Progress:
        base = self.FIELDS * slot
        numbers = self._numbers
        return Progress(int(numbers[base]), int(numbers[base + 1]), numbers[base + 2])
