"""Notebook 07, part 2: who removes a shared-memory segment when a process dies.

::

    who_dies()
      "the worker"                   attached to a segment this kernel owns; SIGKILLed.
                                     The owner's ``finally`` unlinks the segment.
      "the owner (a multiprocessing  created the segment; SIGKILLed, its ``finally`` never
       child)"                       runs. It shares this kernel's resource tracker, whose
                                     pipe stays open while the kernel lives: the segment stays
      "the owner (a separate         created the segment; SIGKILLed. It had started a tracker
       program)"                     of its own; that tracker sees its pipe close and unlinks
                                     the segment (with a "leaked shared_memory" warning)

Each record says whether the segment was still there after the kill, how long it took to
go, and who removed it; :func:`explain_deaths` turns them into sentences. A segment this
experiment finds left behind, it removes itself, so nothing outlives the notebook.

Existence is checked by name: in ``/dev/shm`` on Linux, with ``shm_open`` where there is
no ``/dev/shm`` (macOS); on Windows it cannot be checked (``None``), and the explanations
say so. Listing every segment (:func:`shm_entries`) needs ``/dev/shm``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import Any

from helpers.core import config, paths
from helpers.experiments.data_transfer import (
    MIB,
    Receiver,
    owned_shared_memory,
    start_resource_tracker,
)
from helpers.tasks.transfer import own_segment, touch

SHM_DIR = Path("/dev/shm")


def watch_seconds() -> float:
    """How long a segment is watched after its owner was killed, before calling it left
    behind (long enough for a tracker, which takes tens of milliseconds)."""
    return config.budget(1.0, 0.5)


#: The longest a tracker may take to notice and unlink (seconds).
TRACKER_SECONDS = 5.0


# --- looking at segments ---


def can_list_segments() -> bool:
    """True where segments are files that can be listed (Linux's ``/dev/shm``)."""
    return SHM_DIR.is_dir()


def shm_entries() -> set[str] | None:
    """Segments made by Python's shared_memory module now in /dev/shm; None where there is
    no /dev/shm to look in (macOS, Windows)."""
    if not can_list_segments():
        return None
    return {p.name for p in SHM_DIR.glob("psm_*")}


def segment_exists(name: str) -> bool | None:
    """Whether segment ``name`` exists now; None where this platform cannot say (Windows)."""
    if can_list_segments():
        return (SHM_DIR / name).exists()
    try:
        import _posixshmem
    except ImportError:
        return None
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    os.close(fd)
    return True


def seconds_until_gone(name: str, limit: float) -> float | None:
    """Seconds until segment ``name`` disappears, polling every 2 ms; None if it is still
    there after ``limit`` seconds, or if this platform cannot look."""
    start = time.perf_counter()
    while True:
        exists = segment_exists(name)
        if exists is None:
            return None
        elapsed = time.perf_counter() - start
        if not exists:
            return elapsed
        if elapsed > limit:
            return None
        time.sleep(0.002)


def attach_untracked(name: str) -> shared_memory.SharedMemory:
    """Attach to a segment another *program* owns, without this process's resource tracker
    claiming it (3.13+: ``track=False``; before, attach and unregister at once)."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    segment = shared_memory.SharedMemory(name=name)
    if os.name == "posix":
        resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
    return segment


def remove_leftover(name: str) -> bool:
    """Unlink segment ``name`` if it still exists (this process becomes its owner)."""
    try:
        segment = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    segment.close()
    segment.unlink()
    return True


# --- killing them ---


def _removed_by(gone_after: float | None, removed_here: bool, tracker: str) -> str:
    """Who removed the segment: a tracker (it went by itself), or this notebook."""
    if gone_after is not None:
        return f"{tracker} resource tracker"
    return "this notebook, afterwards" if removed_here else "cannot tell"


def _record(killed: str, owner: str, tracker: str, exit_status: int | None, name: str,
            there_after_kill: bool | None, gone_after: float | None, removed_by: str,
            **extra: Any) -> dict[str, Any]:
    return {"killed": killed, "owner": owner, "tracker": tracker, "exit_status": exit_status,
            "segment": name, "there_after_kill": there_after_kill,
            "gone_after_ms": None if gone_after is None else round(gone_after * 1000, 1),
            "removed_by": removed_by, **extra}


def worker_killed(start_method: str | None = None, size: int = MIB) -> dict[str, Any]:
    """A worker attaches to a segment this kernel owns and is SIGKILLed while attached."""
    method = start_method or config.start_method()
    with owned_shared_memory(size) as segment, Receiver(method) as receiver:
        name = segment.name
        receiver.conn.send(("hold", name, size))
        receiver.conn.recv()  # it has attached and read the segment
        receiver.process.kill()
        receiver.process.join(10)
        exit_code = receiver.process.exitcode
        there = segment_exists(name)
    gone = seconds_until_gone(name, watch_seconds())
    return _record("the worker", "this kernel", "this kernel's", exit_code, name, there,
                   gone, "the owner's finally" if gone is not None else "nobody yet",
                   start_method=method)


def owner_child_killed(start_method: str | None = None, size: int = MIB) -> dict[str, Any]:
    """A multiprocessing child creates and fills a segment, and is SIGKILLed."""
    method = start_method or config.start_method()
    start_resource_tracker()  # the child shares it (under fork only if it runs already)
    context = config.mp_context(method)
    conn, child = context.Pipe()
    process = context.Process(target=own_segment, args=(child, size), daemon=True,
                              name="segment owner")
    process.start()
    child.close()
    name, removed, watched = None, False, watch_seconds()
    try:
        if not conn.poll(60):
            raise TimeoutError("the segment owner did not start within 60 s")
        name, _ = conn.recv()
        process.kill()
        process.join(10)
        there = segment_exists(name)
        gone = seconds_until_gone(name, watched)
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        conn.close()
        if name is not None:
            removed = remove_leftover(name)
    return _record("the owner (a multiprocessing child)", "the child", "this kernel's",
                   process.exitcode, name, there, gone,
                   _removed_by(gone, removed, "a"), start_method=method,
                   watched_ms=round(watched * 1000))


def _start_owner_program(size: int) -> tuple[subprocess.Popen, list[str]]:
    """Start ``python -m helpers.tasks.transfer own SIZE``; its first line, split."""
    process = subprocess.Popen(
        [sys.executable, "-m", "helpers.tasks.transfer", "own", str(size)],
        cwd=paths.REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(60, process.kill)  # a program that never answers is killed
    timer.start()
    try:
        line = process.stdout.readline().split() if process.stdout else []
    finally:
        timer.cancel()
    if len(line) != 3:
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"the owner program did not start: {err[-500:]}")
    return process, line


def _stop_tracker(pid: int | None) -> None:
    """Kill a resource tracker that outlived its cleanup time (it never should)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, ChildProcessError):
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))


def _tracker_said(stderr: str) -> str:
    """The tracker's warning, if it wrote one (the line that names the leak)."""
    return next((line.split("UserWarning:", 1)[-1].strip() for line in stderr.splitlines()
                 if "leaked" in line), "")


def _kill_and_watch(process: subprocess.Popen, name: str, size: int, checksum: int
                    ) -> tuple[bool | None, float | None, bool]:
    """Kill the owner program while this process has the segment mapped; then: was the
    segment there, how long until it went, and could the mapping still be read."""
    reader = attach_untracked(name)
    try:
        process.kill()
        process.wait(10)
        there = segment_exists(name)
        gone = seconds_until_gone(name, TRACKER_SECONDS)
        return there, gone, touch(reader.buf[:size]) == checksum
    finally:
        reader.close()


def owner_program_killed(size: int = MIB) -> dict[str, Any]:
    """A separate program creates and fills a segment and is SIGKILLed; this kernel keeps
    the segment mapped meanwhile, as a worker would, and reads it after the owner is gone."""
    process, (name, checksum, tracker) = _start_owner_program(size)
    tracker_pid = int(tracker) if tracker.isdigit() else None
    try:
        there, gone, still_reads = _kill_and_watch(process, name, size, int(checksum))
    finally:
        process.kill()  # a no-op once it is dead
        try:
            _, err = process.communicate(timeout=TRACKER_SECONDS)  # EOF once the tracker exits
        except subprocess.TimeoutExpired:
            _stop_tracker(tracker_pid)
            _, err = process.communicate()
        removed = remove_leftover(name)
    return _record("the owner (a separate program)", "that program",
                   "its own" if tracker_pid is not None else "none",
                   process.returncode, name, there, gone, _removed_by(gone, removed, "its"),
                   reader_still_read=still_reads, tracker_said=_tracker_said(err))


def who_dies(start_method: str | None = None, size: int = MIB) -> list[dict[str, Any]]:
    """Kill the worker, then an owner started by multiprocessing, then an owner that is a
    program of its own; one record each (see the module's docstring)."""
    method = start_method or config.start_method()
    return [worker_killed(method, size), owner_child_killed(method, size),
            owner_program_killed(size)]


# --- what happened ---

TABLE_COLUMNS = ("killed", "exit_status", "tracker", "there_after_kill", "gone_after_ms",
                 "removed_by")


def _platform_note(platform: str) -> str:
    if platform == "win32":
        return ("Windows has no `/dev/shm` and no resource tracker for shared memory: a "
                "segment is freed when the last process that has it open closes it or dies, "
                "so this notebook cannot look for leftovers there, and has nothing to find.")
    return ("This platform has no `/dev/shm` to look in (macOS keeps POSIX shared memory out "
            "of the file system), so these checks cannot list segments: a segment that leaks "
            "there stays until reboot, unseen.")


def _worker_sentence(r: Mapping[str, Any]) -> str:
    head = f"- **{r['killed']}** (exit status {r['exit_status']}):"
    if r["gone_after_ms"] is None:
        return (head + " the segment was still there afterwards. This should not happen: the "
                "owner's `finally` unlinks it.")
    return (head + " the kernel owned the segment, and its `finally` unlinked it as the block "
            "ended, whatever the worker did.")


def _child_sentence(r: Mapping[str, Any], start_method: str | None) -> str:
    head = f"- **{r['killed']}** (exit status {r['exit_status']}): its `finally` never ran."
    if r["gone_after_ms"] is not None:
        return (head + f" The segment was gone {r['gone_after_ms']:g} ms later: something "
                f"unlinked it for the dead owner ({r['removed_by']}).")
    inherit = ("under fork the child inherited this kernel's tracker because it was already "
               "running when the child was forked" if start_method == "fork" else
               f"under {start_method or 'this start method'} multiprocessing hands every child "
               "its parent's tracker")
    return (head + f" The segment was still there {r.get('watched_ms', 0):g} ms later. The "
            f"child's registration went to this kernel's resource tracker ({inherit}), and "
            "that tracker cleans up only when its pipe closes, when this kernel and all its "
            "children have exited. Until then the segment holds its memory; this notebook "
            "unlinked it afterwards.")


def _program_sentence(r: Mapping[str, Any]) -> str:
    head = f"- **{r['killed']}** (exit status {r['exit_status']}): its `finally` never ran either."
    if r["gone_after_ms"] is None:
        return (head + " The segment was still there after "
                f"{TRACKER_SECONDS:g} s: no tracker removed it ({r['removed_by']} did).")
    text = (head + f" But it had started a resource tracker of its own; the tracker saw its "
            f"pipe close when the program died and unlinked the segment "
            f"{r['gone_after_ms']:g} ms after the kill")
    text += f", saying: *{r['tracker_said']}*." if r.get("tracker_said") else "."
    if r.get("reader_still_read"):
        text += (" The kernel, which had the segment mapped, still read every byte afterwards: "
                 "unlinking removes the *name*; the memory goes when the last process detaches.")
    return text


def explain_deaths(records: Sequence[Mapping[str, Any]], platform: str = sys.platform) -> str:
    """What happened to the segment in each record of :func:`who_dies`, in Markdown."""
    if all(r["there_after_kill"] is None for r in records):
        return _platform_note(platform)
    start_method = next((r.get("start_method") for r in records if r.get("start_method")), None)
    lines = []
    for r in records:
        if r["killed"] == "the worker":
            lines.append(_worker_sentence(r))
        elif "multiprocessing" in r["killed"]:
            lines.append(_child_sentence(r, start_method))
        else:
            lines.append(_program_sentence(r))
    return "\n".join(lines) + "\n\n" + _conclusion(records)


def _conclusion(records: Sequence[Mapping[str, Any]]) -> str:
    kept = [r for r in records if "multiprocessing" in r["killed"] and r["gone_after_ms"] is None]
    freed = [r for r in records if "separate" in r["killed"] and r["gone_after_ms"] is not None]
    if kept and freed:
        return ("So a resource tracker is a safety net for a *program* that dies, not for one "
                "of its processes: while the program lives, the owner's `finally` is what "
                "cleans up, and a segment whose owner was a worker of this kernel stays until "
                "someone unlinks it by name.")
    return ("While a program lives, the owner's `finally` is what cleans up; a resource "
            "tracker acts only when its pipe closes.")


def explain_leak_check(before: set[str] | None, after: set[str] | None,
                       platform: str = sys.platform) -> str:
    """The ``/dev/shm`` leak check in words: what is new, or why it cannot look here."""
    if before is None or after is None:
        return _platform_note(platform)
    new = sorted(after - before)
    if new:
        return (f"Segments in `/dev/shm` now that were not there before: {', '.join(new)}. "
                "Something above left them behind.")
    return ("No segment in `/dev/shm` now that was not there before this section: nothing "
            "leaked. (The test suite checks the same after running the whole notebook.)")


# --- a learner's hand-over (exercise 07.1) ---


@dataclasses.dataclass
class HandOverCheck:
    """What a learner's ``share(data, pool)`` did with one shared-memory hand-over."""

    problem: str = ""
    returned: Any = None
    expected: int = 0
    created: list[str] = dataclasses.field(default_factory=list)  # segment names
    unlinked: list[str] = dataclasses.field(default_factory=list)
    closed: list[str] = dataclasses.field(default_factory=list)
    worker_tasks: int = 0


def check_hand_over(share: Any, size: int = 2**20, timeout: float = 30.0) -> HandOverCheck:
    """Call ``share(data, pool)`` with ``size`` random bytes and a one-worker WorkerPool,
    recording every segment it creates, closes and unlinks (by watching
    ``shared_memory.SharedMemory`` for the length of the call). Whatever it leaves behind,
    the check closes and unlinks afterwards; the pool is shut down."""
    import concurrent.futures
    import zlib

    from helpers.pool import WorkerPool

    data = os.urandom(size)
    check = HandOverCheck(expected=zlib.adler32(data))
    original = shared_memory.SharedMemory
    made: list[shared_memory.SharedMemory] = []

    class Watched(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if kwargs.get("create") or (len(args) > 1 and args[1]):
                made.append(self)
                check.created.append(self.name)

        def close(self) -> None:
            super().close()
            if self in made:
                check.closed.append(self.name)

        def unlink(self) -> None:
            super().unlink()
            check.unlinked.append(self.name)

    pool = WorkerPool(1, mp_context=config.mp_context())
    try:
        pool.submit(abs, 1).result(timeout)  # started before the call
        shared_memory.SharedMemory = Watched
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as caller:
            call = caller.submit(share, data, pool)
            try:
                check.returned = call.result(timeout)
            except concurrent.futures.TimeoutError:
                check.problem = f"`share` had not returned after {timeout:g} s"
            except Exception as error:
                check.problem = f"`share` raised {type(error).__name__}: {error}"
        check.worker_tasks = pool.stats().completed - 1
    finally:
        shared_memory.SharedMemory = original
        pool.shutdown(wait=True, cancel_futures=True)
        for segment in made:  # the learner's leftovers, removed
            with contextlib.suppress(Exception):
                segment.close()
            if segment.name not in check.unlinked:
                with contextlib.suppress(Exception):
                    original.unlink(segment)
    return check
