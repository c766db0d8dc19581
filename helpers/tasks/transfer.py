"""The receiving side of notebook 07: a worker that gets data four ways and reads all of it.

Commands arrive on a pipe as small tuples; the data itself arrives as the command says:

    ("pickle",)            then the payload, pickled in-band (conn.send)
    ("oob", n)             then a protocol-5 pickle header and n raw buffers (send_bytes)
    ("shm", name, size)    the payload is in a shared-memory segment: attach and read it
    ("mmap", path, size)   the payload is in a file: map it and read it
    ("crash",)             exit at once, holding whatever it had attached (for the tests)
    None                   stop

Every way ends with :func:`touch` over the whole payload (so lazily mapped pages are
really read) and sends back its checksum. Standard library only.
"""

from __future__ import annotations

import mmap
import os
import pickle
import sys
import zlib
from multiprocessing import shared_memory
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
        elif kind == "shm":
            segment = attach_shared_memory(command[1])
            try:
                conn.send(touch(segment.buf[: command[2]]))
            finally:
                segment.close()  # detach; the owner unlinks
        elif kind == "mmap":
            with open(command[1], "rb") as file, \
                    mmap.mmap(file.fileno(), command[2], access=mmap.ACCESS_READ) as mapped:
                conn.send(touch(mapped))
        elif kind == "crash":
            if len(command) > 1:
                attach_shared_memory(command[1])  # attached, never closed
            os._exit(3)
