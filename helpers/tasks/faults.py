"""Tasks that fail on purpose, for the fault-injection experiments and tests.

Each one is a module-level function, so it can be sent to workers under every
start method. Standard library only: these run inside worker processes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time


def raise_error(message: str = "this task failed on purpose") -> None:
    """Raise ValueError: an ordinary exception, which a pool sends back to the caller."""
    raise ValueError(message)


def exit_abruptly(code: int = 3) -> None:
    """End the worker process at once with ``os._exit(code)``: no cleanup, no reply."""
    os._exit(code)


def kill_self(signum: int = signal.SIGKILL) -> None:
    """Send a signal to the worker itself (SIGKILL: what the OOM killer does)."""
    os.kill(os.getpid(), signum)
    time.sleep(10)


def segfault() -> None:
    """Read address 0: the worker dies with SIGSEGV, as a crashing C extension would."""
    import faulthandler

    faulthandler.disable()  # die quietly: no "Fatal Python error" dump in the output
    ctypes.string_at(0)


def exceed_memory(limit_mb: int = 200, allocate_mb: int = 400) -> int:
    """Cap this worker's address space at ``limit_mb`` over what it uses, then allocate more.

    The allocation fails inside the interpreter (MemoryError) or the worker dies,
    depending on where it fails; either way the pool must carry on. The limit is
    lifted again afterwards (Unix only: ``resource`` does not exist on Windows).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = _address_space_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (in_use + limit_mb * 2**20, hard))
    try:
        block = bytearray(allocate_mb * 2**20)
        return len(block)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_bytes() -> int:
    """This process's virtual memory size (Linux /proc; elsewhere a generous guess)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 4 * 2**30


def exit_after(seconds: float, code: int = 3) -> None:
    """Sleep, then end the worker process abruptly: a crash while more work waits behind."""
    time.sleep(seconds)
    os._exit(code)


def sleep_for(seconds: float) -> float:
    """Sleep: a task that overruns a timeout, or keeps a worker busy."""
    time.sleep(seconds)
    return seconds


def spin_for(seconds: float) -> int:
    """Busy-loop in pure Python for ``seconds``: stuck CPU-bound work."""
    deadline = time.perf_counter() + seconds
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return spins


def return_unpicklable() -> threading.Lock:
    """Return a lock, which cannot be pickled back to the parent."""
    return threading.Lock()


def raise_unpicklable() -> None:
    """Raise an exception that carries an unpicklable lock."""
    raise ValueError(threading.Lock())


def worker_pid(_: object = None) -> int:
    """The pid of the process running this task."""
    return os.getpid()


def failing_initializer(delay: float = 0.0) -> None:
    """An initializer that raises (after ``delay`` seconds), as a misconfigured set-up would."""
    time.sleep(delay)
    raise RuntimeError("the initializer failed on purpose")


def failing_initializer_leaving_a_mark(path: str, seconds: float) -> None:
    """Raise at once, leaving a thread that writes ``path`` after ``seconds``.

    The worker process ends only once that thread has finished, as it does once its
    logging queues have flushed: a pool that reports the failure before the worker has
    exited reports it before the mark is there.
    """
    def leave_mark() -> None:
        time.sleep(seconds)
        with open(path, "w") as mark:
            mark.write(str(os.getpid()))

    threading.Thread(target=leave_mark).start()
    raise RuntimeError("the initializer failed on purpose")


_counter = 0


def counting_initializer(start: int) -> None:
    """Set a per-worker counter: shows that initializers run once per worker."""
    global _counter
    _counter = start


def bump_counter(_: object = None) -> tuple[int, int]:
    """(pid, counter after incrementing): how many tasks this worker has run."""
    global _counter
    _counter += 1
    return os.getpid(), _counter


def exit_or_report_pid(exit_code: int | None) -> int:
    """Exit the worker with ``exit_code``, or, given None, return the worker's pid."""
    if exit_code is not None:
        os._exit(exit_code)
    return os.getpid()


class ExitAtPickle:
    """An object whose pickling raises SystemExit (as a buggy ``__reduce__`` might)."""

    def __reduce__(self):
        raise SystemExit(7)


def return_exit_at_pickle() -> ExitAtPickle:
    """Return an object that raises SystemExit while the worker pickles it back."""
    return ExitAtPickle()


class DieAtPickle:
    """An object whose pickling ends the process at once (a crash in a ``__reduce__``)."""

    def __reduce__(self):
        os._exit(5)


def log_pid_then_return_death(path: str) -> DieAtPickle:
    """Append this worker's pid to ``path``, then return a result whose pickling kills the
    worker: the task finishes, and its result is lost with its worker."""
    with open(path, "a") as log:
        log.write(f"{os.getpid()}\n")
    return DieAtPickle()


class Tracked:
    """A result the worker keeps a weak reference to, to see whether it is let go."""


_last_result = None


def make_tracked(_: object = None) -> Tracked:
    """Return a Tracked object, remembering it weakly in this worker."""
    import weakref

    global _last_result
    result = Tracked()
    _last_result = weakref.ref(result)
    return result


def previous_result_alive() -> bool:
    """Whether the object the last make_tracked() returned is still referenced here."""
    import gc

    gc.collect()
    return _last_result is not None and _last_result() is not None


_held: list[bytearray] = []


def hold_memory(megabytes: int) -> int:
    """Allocate and keep ``megabytes`` (a leak, as a cache that never empties); return the
    worker's pid."""
    block = bytearray(megabytes * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page, so it is resident
    _held.append(block)
    return os.getpid()


def sleep_then_return(seconds: float, value: object) -> object:
    """Sleep, then return ``value`` (which may be large: a transfer behind a slow task)."""
    time.sleep(seconds)
    return value


def sleep_then_mark(seconds: float, path: str) -> str:
    """Sleep, then create ``path``: a task whose end can be seen from outside, even after
    the program that submitted it has gone (exercise 08.1's drained shutdown)."""
    time.sleep(seconds)
    with open(path, "w") as mark:
        mark.write(str(os.getpid()))
    return path


def slow_initializer(seconds: float) -> None:
    """An initializer that takes a while, like a worker importing a large library."""
    time.sleep(seconds)


def ignore_sigterm() -> int:
    """Make this worker ignore SIGTERM from now on (as some C libraries and servers do);
    return its pid. A pool that only asks politely can no longer stop it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return os.getpid()


def leave_a_thread_running(seconds: float) -> int:
    """Start a non-daemon thread that sleeps ``seconds``, and return the worker's pid: the
    worker runs its next tasks as usual, but cannot exit (Python joins the thread first)."""
    threading.Thread(target=time.sleep, args=(seconds,), name="left-running").start()
    return os.getpid()


def crash_leaving_a_grandchild(path: str, seconds: float, code: int = 3) -> None:
    """Fork a grandchild that sleeps ``seconds`` (its pid goes to ``path``), then end the
    worker with ``os._exit(code)``. The grandchild inherits every descriptor the worker
    had, its pipe to the pool among them, so that pipe does not close when the worker
    dies. Unix only."""
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(seconds)
        finally:
            os._exit(0)
    with open(path, "w") as mark:
        mark.write(str(pid))
    os._exit(code)
