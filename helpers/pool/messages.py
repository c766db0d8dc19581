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
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import RawArray
from typing import Any

#: Slot values for "which task is running".
STARTING = -3.0  # batch 0: the worker is not set up yet (its initializer has not returned)
READING = -2.0  # unpickling the batch, no task started yet
FINISHED = -1.0  # every task of the batch has run; sending the results


@dataclass(slots=True)
class Batch:
    """Tasks for one worker: ``[(fn, args, kwargs), ...]``.

    Both sides number a worker's batches 1, 2, 3... as they are sent and received (one
    pipe keeps them in order), so the number need not travel.
    """

    tasks: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]


@dataclass(slots=True)
class Stop:
    """Finish and exit (the pool is closing)."""


@dataclass(slots=True)
class BatchResults:
    """One batch's outcome, column by column (few objects per task)."""

    seq: int
    values: list[Any] = field(default_factory=list)  # result per task (None where it failed)
    errors: dict[int, tuple[BaseException, str]] = field(default_factory=dict)  # index -> ...
    started: list[float] = field(default_factory=list)  # perf_counter, per task
    finished: list[float] = field(default_factory=list)
    retiring: bool = False  # the worker exits after this batch (max_memory_per_child)


@dataclass(slots=True)
class Unreadable:
    """The batch could not be unpickled in the worker (e.g. a function it cannot import)."""

    seq: int
    summary: str
    traceback: str


@dataclass(slots=True)
class InitFailed:
    """The pool's initializer raised in the worker; the worker has exited."""

    summary: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Progress:
    """One worker's slot as the parent reads it."""

    seq: int  # the batch the worker is in (0: none yet)
    index: int  # the task it is running, or STARTING / READING / FINISHED
    started: float  # time.monotonic() when that task (or the reading) began


class ProgressBoard:
    """Three shared doubles per worker slot: batch number, task index, start time.

    A worker writes only its own slot; the parent only reads. Each number is one
    aligned 8-byte write, so a reader sees either the old or the new value.
    """

    FIELDS = 3

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._numbers = RawArray("d", self.FIELDS * slots)

    def reset(self, slot: int) -> None:
        """Before a worker starts in ``slot``: not set up yet, no batch."""
        base = self.FIELDS * slot
        self._numbers[base:base + self.FIELDS] = [0.0, STARTING, 0.0]

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
        seq, index, started = self._numbers[base:base + self.FIELDS]
        return Progress(int(seq), int(index), started)
