"""Notebook 07: moving data to a worker, five ways, and who cleans up shared memory.

::

    payload (a block of bytes: what a NumPy array's data is)
      "pickle"                 conn.send(payload): pickled into one big message, copied
                               into the pipe, unpickled into a new object in the worker
      "pickle 5, out-of-band"  pickle protocol 5: a small header, and the buffer sent raw
                               beside it (no copy into the pickle)
      "shared memory"          the payload already lives in a multiprocessing.shared_memory
                               segment: the worker gets its *name* and maps the same pages
      "memory-mapped file"     the payload is in a file: the worker maps it (page cache)
      "thread (no copy)"       a thread of this process reads the same object
    the worker (helpers.tasks.transfer) reads every byte and answers with a checksum

Shared memory has an owner: the process that creates a segment unlinks it, in a
``finally``, so a crashed worker cannot leave it behind in ``/dev/shm``
(:func:`owned_shared_memory`). Payload sizes are capped by this machine's memory and
by the size of ``/dev/shm`` (64 MB in a default Docker container).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import Any

from helpers.core import config, machine, measure
from helpers.tasks.transfer import serve, touch

METHODS = ("pickle", "pickle 5, out-of-band", "shared memory", "memory-mapped file",
           "thread (no copy)")
MIB = 2**20


def make_payload(size: int) -> bytearray:
    """``size`` bytes of a repeating random pattern (cheap to make, not compressible)."""
    block = os.urandom(min(size, MIB))
    payload = bytearray(block * (size // len(block)))
    payload += block[: size - len(payload)]
    return payload


@contextlib.contextmanager
def owned_shared_memory(size: int) -> Iterator[shared_memory.SharedMemory]:
    """Create a segment this process owns; close and unlink it however the block ends."""
    segment = shared_memory.SharedMemory(create=True, size=max(1, size))
    try:
        yield segment
    finally:
        segment.close()
        segment.unlink()


def shm_entries() -> set[str]:
    """Shared-memory segments made by Python's shared_memory module now in /dev/shm."""
    folder = Path("/dev/shm")
    return {p.name for p in folder.glob("psm_*")} if folder.is_dir() else set()


class Receiver:
    """One worker process that receives payloads (see :mod:`helpers.tasks.transfer`)."""

    def __init__(self, start_method: str | None = None) -> None:
        # Start this process's resource tracker *before* the worker, so the worker shares
        # it. On Python 3.11/3.12 a process that attaches to a segment registers it with
        # its tracker; a worker with a tracker of its own would unlink the segment when
        # it exits, under its owner's feet.
        resource_tracker.ensure_running()
        context = config.mp_context(start_method)
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child,), daemon=True,
                                       name="receiver")
        self.process.start()
        child.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()

    def by_pickle(self, payload: Any) -> int:
        self.conn.send(("pickle",))
        self.conn.send(payload)
        return self.conn.recv()

    def by_out_of_band(self, payload: Any) -> int:
        buffers: list[pickle.PickleBuffer] = []
        header = pickle.dumps(pickle.PickleBuffer(payload), protocol=5,
                              buffer_callback=buffers.append)
        self.conn.send(("oob", len(buffers)))
        self.conn.send_bytes(header)
        for buffer in buffers:
            self.conn.send_bytes(buffer.raw())
        return self.conn.recv()

    def by_shared_memory(self, name: str, size: int) -> int:
        self.conn.send(("shm", name, size))
        return self.conn.recv()

    def by_memory_map(self, path: str, size: int) -> int:
        self.conn.send(("mmap", path, size))
        return self.conn.recv()


def size_limits() -> dict[str, int]:
    """The largest payload each method may use here: 1/8 of memory; /dev/shm's free space
    over 2 for shared memory (joblib and others use it too)."""
    memory = machine.memory_bytes() or 4 * 2**30
    limits = {method: memory // 8 for method in METHODS}
    if Path("/dev/shm").is_dir():
        free = os.statvfs("/dev/shm")
        limits["shared memory"] = min(limits["shared memory"], free.f_bavail * free.f_frsize // 2)
    return limits


def default_sizes() -> list[int]:
    top = 256 * MIB if not config.quick_mode() else 64 * MIB
    return [4**k * 1024 for k in range(10) if 4**k * 1024 <= top]


def hand_over(method: str, receiver: Receiver, thread: ThreadPoolExecutor, payload: bytearray,
              segment_name: str, path: Path) -> int:
    """Hand ``payload`` to a reader by ``method``; returns the reader's checksum."""
    size = len(payload)
    if method == "pickle":
        return receiver.by_pickle(payload)
    if method == "pickle 5, out-of-band":
        return receiver.by_out_of_band(payload)
    if method == "shared memory":
        return receiver.by_shared_memory(segment_name, size)
    if method == "memory-mapped file":
        return receiver.by_memory_map(str(path), size)
    if method == "thread (no copy)":
        return thread.submit(touch, payload).result()
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def transfer_costs(sizes: list[int] | None = None, methods: tuple[str, ...] = METHODS,
                   repeats: int | None = None, start_method: str | None = None
                   ) -> list[dict[str, Any]]:
    """Seconds to hand each payload size to a worker (which reads it all), per method."""
    sizes = sizes or default_sizes()
    repeats = repeats or int(config.budget(3, 2))
    limits = size_limits()
    rows = []
    with Receiver(start_method) as receiver, ThreadPoolExecutor(1) as thread, \
            tempfile.TemporaryDirectory(prefix="course-mmap-") as folder:
        receiver.by_pickle(b"warm up")
        for size in sizes:
            chosen = [m for m in methods if size <= limits[m]]
            for method in methods:
                if method not in chosen:
                    rows.append({"method": method, "bytes": size, "skipped":
                                 f"over this machine's limit of {limits[method] // MIB} MiB"})
            payload = make_payload(size)
            expected = touch(payload)
            path = Path(folder) / "payload.bin"
            path.write_bytes(payload)
            with owned_shared_memory(size) as segment:
                segment.buf[:size] = payload
                seconds: dict[str, list[float]] = {m: [] for m in chosen}
                correct = {m: True for m in chosen}
                for _, method in measure.interleaved(chosen, repeats):
                    start = time.perf_counter()
                    checksum = hand_over(method, receiver, thread, payload, segment.name, path)
                    seconds[method].append(time.perf_counter() - start)
                    correct[method] &= checksum == expected
            for method in chosen:
                s = measure.spread(seconds[method])
                rows.append({"method": method, "bytes": size, "seconds": s.median,
                             "low": s.low, "high": s.high, "correct": correct[method],
                             "mib_per_s": size / MIB / s.median})
            path.unlink()
    return rows


def crash_while_attached(start_method: str | None = None) -> dict[str, Any]:
    """A worker attaches to a segment this process owns and dies without detaching.

    Returns the segment's name and whether it is still in /dev/shm afterwards.
    """
    before = shm_entries()
    with owned_shared_memory(MIB) as segment, Receiver(start_method) as receiver:
        name = segment.name
        receiver.conn.send(("crash", name))
        receiver.process.join(10)
        exitcode = receiver.process.exitcode
    time.sleep(0.1)
    return {"segment": name, "exit_code": exitcode,
            "left_in_shm": sorted(shm_entries() - before)}


def cost_per_mib(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds per MiB of each method over its payloads of 1 MiB or more."""
    costs: dict[str, list[float]] = {}
    for r in rows:
        if "seconds" in r and r["bytes"] >= MIB:
            costs.setdefault(r["method"], []).append(r["seconds"] * 1000 / (r["bytes"] / MIB))
    return {method: statistics.median(values) for method, values in costs.items()}
