"""The worker side of notebook 07: a receiver that gets data four ways, and segment owners.

The receiver (:func:`serve`) gets commands on a pipe as small tuples; the data itself
arrives as the command says:

    ("pickle",)            then the payload, pickled in-band (conn.send)
    ("oob", n)             then a protocol-5 pickle header and n raw buffers (send_bytes)
    ("shm", name, size)    the payload is in a shared-memory segment: attach and read it
    ("mmap", path, size)   the payload is in a file: map it and read it
    ("hold", name, size)   attach to a segment, read it, answer, and keep it attached until
                           the next command (the parent kills the worker meanwhile)
    None                   stop

Every way ends with :func:`touch` over the whole payload (so lazily mapped pages are
really read) and sends back its checksum.

Two *owners* create a segment, fill it and wait, so that notebook 07 can kill them:
:func:`own_segment` is a multiprocessing child (it shares its parent's resource
tracker); ``python -m helpers.tasks.transfer own SIZE`` is a separate program (it starts
a tracker of its own). Standard library only.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import sys
import zlib
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import Connection
from typing import Any

from helpers.core import watchdog


def touch(buffer: Any) -> int:
    """Read every byte (a checksum), so the data is really there."""
    return zlib.adler32(buffer)


def attach_shared_memory(name: str) -> shared_memory.SharedMemory:
    """Attach to a segment someone else owns. Python 3.13+: without registering it with
    this process's resource tracker (``track=False``); before 3.13 it registers it, which
    is harmless in a multiprocessing child: it shares its parent's tracker."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    return shared_memory.SharedMemory(name=name)


def checksum_segment(name: str, size: int) -> int:
    """Attach to the segment called ``name``, checksum its first ``size`` bytes, detach
    (exercise 07.1's worker: it gets a name, never the data)."""
    segment = attach_shared_memory(name)
    try:
        view = segment.buf[:size]
        try:
            return zlib.adler32(view)
        finally:
            view.release()
    finally:
        segment.close()


def filled_segment(size: int) -> shared_memory.SharedMemory:
    """A new segment of ``size`` bytes (this process owns it), filled with a pattern."""
    segment = shared_memory.SharedMemory(create=True, size=max(1, size))
    pattern = bytes(range(256)) * 4096
    for start in range(0, size, len(pattern)):
        chunk = pattern[: size - start]
        segment.buf[start:start + len(chunk)] = chunk
    return segment


def tracker_pid() -> int | None:
    """The pid of the resource tracker this process started, if it started one (None in a
    multiprocessing child, which uses its parent's, and on Windows, which has none)."""
    return getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)


def own_segment(conn: Connection, size: int) -> None:
    """Create and fill a segment, send ``(name, checksum)``, then wait for a word (or to be
    killed). Told to stop, or orphaned, it cleans up as an owner does: close, unlink."""
    watchdog.worker_setup()
    segment = filled_segment(size)
    try:
        conn.send((segment.name, touch(segment.buf[:size])))
        with contextlib.suppress(EOFError, OSError):
            conn.recv()
    finally:
        segment.close()
        segment.unlink()


def own_segment_program(size: int) -> None:
    """The separate program: print ``name checksum tracker-pid``, wait until stdin closes."""
    segment = filled_segment(size)
    try:
        print(segment.name, touch(segment.buf[:size]), tracker_pid(), flush=True)
        sys.stdin.read()  # until the parent closes our stdin, or kills us
    finally:
        segment.close()
        segment.unlink()


def serve(conn: Connection) -> None:
    """Answer commands until told to stop (or the parent dies)."""
    watchdog.worker_setup()
    while (command := conn.recv()) is not None:
        kind = command[0]
        if kind == "pickle":
            payload = conn.recv()
            conn.send(touch(payload))
        elif kind == "oob":
            header = conn.recv_bytes()
            buffers = [conn.recv_bytes() for _ in range(command[1])]
            conn.send(touch(pickle.loads(header, buffers=buffers)))
        elif kind in ("shm", "hold"):
            segment = attach_shared_memory(command[1])
            try:
                conn.send(touch(segment.buf[: command[2]]))
                if kind == "hold":
                    conn.recv()  # attached until the next command (or SIGKILL)
            finally:
                segment.close()  # detach; the owner unlinks
        elif kind == "mmap":
            with open(command[1], "rb") as file, \
                    mmap.mmap(file.fileno(), command[2], access=mmap.ACCESS_READ) as mapped:
                conn.send(touch(mapped))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "own":
        sys.exit(f"usage: {os.path.basename(sys.executable)} -m helpers.tasks.transfer own SIZE")
    own_segment_program(int(sys.argv[2]))
