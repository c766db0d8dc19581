"""Threads share memory: the strength, and the race it invites.

``counter.value += 1`` is three steps (read, add, write). Another thread can run
between the read and the write, and then one of the two updates is lost. On modern
CPython that window is tiny and the race shows up rarely, so :func:`add_racy`
widens it on purpose: ``time.sleep(0)`` between read and write lets another thread
run *there*, every time. The lock version does the same steps while holding a
``threading.Lock``, so no other thread can get between them.

Standard library only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class Counter:
    """A shared integer."""

    def __init__(self) -> None:
        self.value = 0


def add_racy(counter: Counter, times: int) -> None:
    """Read, yield to other threads, write: the read-modify-write window made wide."""
    for _ in range(times):
        current = counter.value
        time.sleep(0)  # another thread runs here, and may write in between
        counter.value = current + 1


def add_locked(counter: Counter, times: int, lock: threading.Lock) -> None:
    """The same steps, with the lock held across read and write."""
    for _ in range(times):
        with lock:
            current = counter.value
            time.sleep(0)
            counter.value = current + 1


@dataclass(frozen=True)
class RaceResult:
    threads: int
    increments_per_thread: int
    locked: bool
    expected: int
    counted: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.expected - self.counted


def race(threads: int = 4, increments: int = 1000, locked: bool = False) -> RaceResult:
    """Let ``threads`` threads each add ``increments`` to one counter; count what arrived."""
    if not 1 <= threads <= 64 or not 1 <= increments <= 1_000_000:
        raise ValueError("threads must be 1 to 64 and increments 1 to 1000000")
    counter, lock = Counter(), threading.Lock()
    target, extra = (add_locked, (lock,)) if locked else (add_racy, ())
    workers = [threading.Thread(target=target, args=(counter, increments, *extra))
               for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return RaceResult(threads, increments, locked, threads * increments, counter.value,
                      time.perf_counter() - start)


def lock_cost(increments: int = 200_000) -> tuple[float, float]:
    """Seconds per plain increment, and per increment inside ``with lock`` (one thread)."""
    counter, lock = Counter(), threading.Lock()
    start = time.perf_counter()
    for _ in range(increments):
        counter.value += 1
    plain = (time.perf_counter() - start) / increments
    start = time.perf_counter()
    for _ in range(increments):
        with lock:
            counter.value += 1
    return plain, (time.perf_counter() - start) / increments


def run_adder(adder: Callable[[Counter, threading.Lock, int], object], threads: int = 4,
              increments: int = 300, timeout: float = 10.0) -> RaceResult:
    """Run a learner's ``adder(counter, lock, increments)`` on ``threads`` threads at once.

    Raises the first exception a thread raised, or TimeoutError if the threads have not
    finished after ``timeout`` seconds (a thread cannot be stopped: they are daemons, and
    are left to finish or wait on their own).
    """
    counter, lock = Counter(), threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            adder(counter, lock, increments)
        except BaseException as error:  # reported to the caller, not lost in a thread
            errors.append(error)

    workers = [threading.Thread(target=run, daemon=True, name=f"adder-{i}")
               for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    deadline = start + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.perf_counter()))
    if any(worker.is_alive() for worker in workers):
        raise TimeoutError(f"the threads had not finished after {timeout:g} s")
    if errors:
        raise errors[0]
    return RaceResult(threads, increments, True, threads * increments, counter.value,
                      time.perf_counter() - start)
