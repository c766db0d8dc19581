"""Notebook 07: moving data to a worker, six ways, and what the libraries really send.

::

    payload (a block of bytes: what a NumPy array's data is)
      "pickle"                  conn.send(payload): pickled into one big message, copied
                                into the pipe, unpickled into a new object in the worker
      "pickle 5, out-of-band"   pickle protocol 5 with a buffer_callback: a small header,
                                and the buffer sent raw beside it (no copy into the pickle).
                                The course's own transport: ProcessPoolExecutor,
                                multiprocessing.Pool and joblib pickle arguments in-band
                                (:func:`library_messages` measures what they send)
      "shared memory"           the payload already lives in a multiprocessing.shared_memory
                                segment: the worker gets its *name* and maps the same pages
      "copy into shared memory" the payload is an ordinary object: create a segment, copy
                                it in, hand over the name, unlink when the worker is done
      "memory-mapped file"      the payload is in a file: the worker maps it (page cache)
      "thread (no copy)"        a thread of this process reads the same object
    the worker (helpers.tasks.transfer) reads every byte and answers with a checksum

Every row records the start method and the GIL state it ran with, and
:func:`explain_transfer` turns a run into sentences that hold for that run. Shared memory
has an owner: the process that creates a segment unlinks it, in a ``finally``
(:func:`owned_shared_memory`); what happens when an owner dies is
:mod:`helpers.experiments.shm_ownership`. Payload sizes are capped by this machine's
memory and by the size of ``/dev/shm`` (64 MB in a default Docker container).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from helpers.core import config, machine, measure
from helpers.tasks.transfer import serve, touch

THREAD = "thread (no copy)"
METHODS = ("pickle", "pickle 5, out-of-band", "shared memory", "copy into shared memory",
           "memory-mapped file", THREAD)
SHM_METHODS = ("shared memory", "copy into shared memory")
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


def start_resource_tracker() -> None:
    """Start this process's resource tracker now, where there is one (POSIX), so that the
    workers started after it share it (under fork, a child inherits only a running one)."""
    if os.name == "posix":
        resource_tracker.ensure_running()


class Receiver:
    """One worker process that receives payloads (see :mod:`helpers.tasks.transfer`)."""

    def __init__(self, start_method: str | None = None) -> None:
        # Start this process's resource tracker *before* the worker, so the worker shares
        # it. On Python 3.11/3.12 a process that attaches to a segment registers it with
        # its tracker; a worker with a tracker of its own would unlink the segment when
        # it exits, under its owner's feet.
        start_resource_tracker()
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
        """Stop the worker (kill it if it does not stop within 5 s) and close the pipe."""
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
    """The largest payload each method may use here: 1/8 of memory; for the two shared
    memory rows also a third of /dev/shm's free space each (both segments exist at once
    while the copy row runs; joblib and others use /dev/shm too)."""
    memory = machine.memory_bytes() or 4 * 2**30
    limits = {method: memory // 8 for method in METHODS}
    if Path("/dev/shm").is_dir():
        free = os.statvfs("/dev/shm")
        for method in SHM_METHODS:
            limits[method] = min(limits[method], free.f_bavail * free.f_frsize // 3)
    return limits


def default_sizes() -> list[int]:
    top = 256 * MIB if not config.quick_mode() else 64 * MIB
    return [4**k * 1024 for k in range(10) if 4**k * 1024 <= top]


def copy_then_hand_over(receiver: Receiver, payload: bytearray) -> int:
    """The honest price of shared memory for data that is not there yet: create a
    segment, copy the payload in, hand over its name, unlink once the worker has read it."""
    size = len(payload)
    with owned_shared_memory(size) as segment:
        segment.buf[:size] = payload
        return receiver.by_shared_memory(segment.name, size)


def hand_over(method: str, receiver: Receiver, thread: ThreadPoolExecutor, payload: bytearray,
              segment_name: str | None, path: Path | None) -> int:
    """Hand ``payload`` to a reader by ``method``; returns the reader's checksum.

    ``segment_name`` and ``path`` name a segment and a file that already hold the payload
    (the "shared memory" and "memory-mapped file" rows).
    """
    size = len(payload)
    if method == "pickle":
        return receiver.by_pickle(payload)
    if method == "pickle 5, out-of-band":
        return receiver.by_out_of_band(payload)
    if method == "shared memory" and segment_name is not None:
        return receiver.by_shared_memory(segment_name, size)
    if method == "copy into shared memory":
        return copy_then_hand_over(receiver, payload)
    if method == "memory-mapped file" and path is not None:
        return receiver.by_memory_map(str(path), size)
    if method == THREAD:
        return thread.submit(touch, payload).result()
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _skipped_rows(size: int, methods: Sequence[str], limits: Mapping[str, int]
                  ) -> list[dict[str, Any]]:
    return [{"method": m, "bytes": size,
             "skipped": f"over this machine's limit of {limits[m] // MIB} MiB"}
            for m in methods if size > limits[m]]


def _measure_size(payload: bytearray, chosen: Sequence[str], repeats: int, receiver: Receiver,
                  thread: ThreadPoolExecutor, folder: str) -> dict[str, tuple[list[float], bool]]:
    """Seconds per repeat and 'every checksum matched' for each chosen method, interleaved."""
    size, expected = len(payload), touch(payload)
    with contextlib.ExitStack() as stack:
        segment_name = path = None
        if "shared memory" in chosen:
            segment = stack.enter_context(owned_shared_memory(size))
            segment.buf[:size] = payload
            segment_name = segment.name
        if "memory-mapped file" in chosen:
            path = Path(folder) / "payload.bin"
            path.write_bytes(payload)
            stack.callback(path.unlink)
        seconds: dict[str, list[float]] = {m: [] for m in chosen}
        correct = dict.fromkeys(chosen, True)
        for _, method in measure.interleaved(chosen, repeats):
            start = time.perf_counter()
            checksum = hand_over(method, receiver, thread, payload, segment_name, path)
            seconds[method].append(time.perf_counter() - start)
            correct[method] &= checksum == expected
    return {m: (seconds[m], correct[m]) for m in chosen}


def transfer_costs(sizes: list[int] | None = None, methods: tuple[str, ...] = METHODS,
                   repeats: int | None = None, start_method: str | None = None
                   ) -> list[dict[str, Any]]:
    """Seconds to hand each payload size to a worker (which reads it all), per method.

    Every measured row records the start method, the GIL state and the mode it ran in.
    """
    sizes = sizes or default_sizes()
    repeats = repeats or int(config.budget(3, 2))
    method_used = start_method or config.start_method()
    limits = size_limits()
    rows = []
    with Receiver(method_used) as receiver, ThreadPoolExecutor(1) as thread, \
            tempfile.TemporaryDirectory(prefix="course-mmap-") as folder:
        receiver.by_pickle(b"warm up")
        for size in sizes:
            rows += _skipped_rows(size, methods, limits)
            chosen = [m for m in methods if size <= limits[m]]
            if not chosen:
                continue
            measured = _measure_size(make_payload(size), chosen, repeats, receiver, thread,
                                     folder)
            gil = machine.gil_enabled()
            for method, (seconds, correct) in measured.items():
                s = measure.spread(seconds)
                rows.append({"method": method, "bytes": size, "seconds": s.median,
                             "low": s.low, "high": s.high, "repeats": s.count,
                             "correct": correct, "mib_per_s": size / MIB / s.median,
                             "start_method": method_used, "gil_enabled": gil,
                             "mode": config.mode()})
    return rows


def cost_per_mib(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median milliseconds per MiB of each method over its payloads of 1 MiB or more."""
    costs: dict[str, list[float]] = {}
    for r in rows:
        if "seconds" in r and r["bytes"] >= MIB:
            costs.setdefault(r["method"], []).append(r["seconds"] * 1000 / (r["bytes"] / MIB))
    return {method: statistics.median(values) for method, values in costs.items()}


# --- what the libraries send ---


def _protocol(message: bytes | memoryview) -> int:
    """The protocol a pickle was written with (its PROTO opcode; protocols 0 and 1 have none)."""
    head = bytes(message[:2])
    return head[1] if head[:1] == pickle.PROTO else 1


def _joblib_message(task: Any) -> dict[str, Any] | None:
    """The message joblib's loky backend makes of ``task`` (None without joblib)."""
    try:
        import joblib
        from joblib.externals.loky.backend import reduction
    except ImportError:
        return None
    default = inspect.signature(joblib.Parallel).parameters["max_nbytes"].default
    message = reduction.dumps(task)
    name = getattr(reduction, "get_loky_pickler_name", lambda: None)() or "cloudpickle"
    return {"sender": "joblib (loky backend)", "pickler": f"{name}, no buffer_callback",
            "protocol": _protocol(message), "message_bytes": len(message),
            "out_of_band_bytes": 0,
            "memmaps_numpy_above": str(getattr(default, "default_value", default))}


def library_messages(size: int = MIB) -> list[dict[str, Any]]:
    """How big a message each sender makes of a task with a ``size``-byte argument, and how
    many bytes travel outside it: the libraries' picklers, next to this notebook's
    out-of-band route. A message at least ``size`` long carries the payload in-band."""
    payload = make_payload(size)
    task = (touch, (payload,), {})
    message = ForkingPickler.dumps(task)
    rows = [{"sender": "ProcessPoolExecutor, multiprocessing.Pool",
             "pickler": "multiprocessing's ForkingPickler, no buffer_callback",
             "protocol": _protocol(message), "message_bytes": len(message),
             "out_of_band_bytes": 0}]
    if (joblib_row := _joblib_message(task)) is not None:
        rows.append(joblib_row)
    buffers: list[pickle.PickleBuffer] = []
    header = pickle.dumps(pickle.PickleBuffer(payload), protocol=5,
                          buffer_callback=buffers.append)
    rows.append({"sender": "this notebook's out-of-band row",
                 "pickler": "pickle with buffer_callback, then send_bytes per buffer",
                 "protocol": _protocol(header), "message_bytes": len(header),
                 "out_of_band_bytes": sum(b.raw().nbytes for b in buffers)})
    for row in rows:
        row["payload_bytes"] = size
    return rows


def explain_library_messages(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: which senders carried the payload inside their pickle, from ``rows``."""
    lines = []
    for r in rows:
        size = _size(r["payload_bytes"])
        if r["out_of_band_bytes"]:
            lines.append(f"- **{r['sender']}**: a {r['message_bytes']:,}-byte header, and "
                         f"{_size(r['out_of_band_bytes'])} sent raw beside it.")
        elif r["message_bytes"] >= r["payload_bytes"]:
            lines.append(f"- **{r['sender']}** ({r['pickler']}, protocol {r['protocol']}): "
                         f"one {r['message_bytes']:,}-byte message for a {size} argument: "
                         "the payload is inside the pickle (in-band).")
        else:
            lines.append(f"- **{r['sender']}**: a {r['message_bytes']:,}-byte message, "
                         f"smaller than the {size} argument: the payload went another way.")
    text = "What each sender makes of a task whose argument is the payload:\n\n" + "\n".join(lines)
    joblib_row = next((r for r in rows if r["sender"].startswith("joblib")), None)
    if joblib_row is None:
        text += "\n\njoblib is not installed in this kernel, so its row is missing."
    else:
        text += (f"\n\njoblib does have a way around the copy, for NumPy arrays only: above "
                 f"`max_nbytes` ({joblib_row['memmaps_numpy_above']} by default) it dumps the "
                 "array to a file (in `/dev/shm` where it can) and sends the workers a "
                 "memory map of it instead (notebook 04).")
    return text


# --- what the run showed ---


def _size(size: int) -> str:
    return f"{size / MIB:g} MiB" if size >= MIB else f"{size / 1024:g} KiB"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"


def _measured(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if "seconds" in r]


def _largest_with(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]
                  ) -> dict[str, Mapping[str, Any]] | None:
    """The rows of ``methods`` at the largest size where all of them were measured."""
    sizes = sorted({r["bytes"] for r in rows}, reverse=True)
    for size in sizes:
        found = {r["method"]: r for r in rows if r["bytes"] == size and r["method"] in methods}
        if set(found) == set(methods):
            return found
    return None


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when the two rows' min–max ranges overlap: the run cannot tell them apart."""
    return a["low"] <= b["high"] and b["low"] <= a["high"]


def _range(r: Mapping[str, Any]) -> str:
    """A row's median and its [min–max] range."""
    return f"{_ms(r['seconds'])} [{r['low'] * 1000:.3g}–{r['high'] * 1000:.3g}]"


def _cost_lines(rows: Sequence[Mapping[str, Any]]) -> str:
    per_mib = cost_per_mib(list(rows))
    if not per_mib:
        return "No payload of 1 MiB or more was measured, so there is no cost per MiB to show."
    thread = per_mib.get(THREAD)
    lines = [f"- **{m}**: {c:.2f} ms/MiB" + (f" ({c / thread:.1f}× the thread, which only reads)"
                                             if thread and m != THREAD else "")
             for m, c in per_mib.items()]
    return ("Median cost per MiB over payloads of 1 MiB and more (reading the data included; "
            "below, times are medians with the [min–max] of the repeats, in ms):\n\n"
            + "\n".join(lines))


#: The fixed work each route does per hand-over, whatever the payload's size.
FIXED_WORK = {
    "pickle": "sends two messages (a command, then the pickle)",
    "pickle 5, out-of-band": "sends three messages (a command, the header, the buffer)",
    "shared memory": "attaches to the segment and detaches again",
    "copy into shared memory": "creates a segment and unlinks it again, every time",
    "memory-mapped file": "opens and maps the file",
}


def _small_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    process = [r for r in rows if r["method"] != THREAD]
    if len({r["method"] for r in process}) < 2:
        return ""
    smallest = min(r["bytes"] for r in process)
    there = sorted((r for r in process if r["bytes"] == smallest), key=lambda r: r["seconds"])
    low, high = there[0], there[-1]
    if high["seconds"] <= 2 * low["seconds"]:
        return (f"At {_size(smallest)} every way to another process took between "
                f"{_ms(low['seconds'])} and {_ms(high['seconds'])}: a message round trip, not "
                "the bytes, sets the price of small payloads.")
    text = (f"At {_size(smallest)} the ways to another process ranged from "
            f"{_ms(low['seconds'])} (**{low['method']}**) to {_ms(high['seconds'])} "
            f"(**{high['method']}**, which {FIXED_WORK.get(high['method'], 'does more work')}): "
            "with so few bytes, each route's fixed work sets its price, not the bytes.")
    if high["low"] <= 2 * low["high"]:
        text += (f" But the dearest one's own repeats ranged over {_range(high)}, so this run "
                 "cannot say how much of that gap is noise.")
    return text


def _out_of_band_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    pair = _largest_with(rows, ("pickle", "pickle 5, out-of-band"))
    if pair is None:
        return ""
    plain, oob = pair["pickle"], pair["pickle 5, out-of-band"]
    at = _size(plain["bytes"])
    if _overlap(plain, oob):
        verdict = (f"At {at}, out-of-band buffers took {_range(oob)} against plain pickling's "
                   f"{_range(plain)}: the ranges overlap, so this run cannot tell them apart.")
    elif oob["seconds"] < plain["seconds"]:
        verdict = (f"At {at}, out-of-band buffers took {_range(oob)} against plain pickling's "
                   f"{_range(plain)}, {plain['seconds'] / oob['seconds']:.1f}× faster: they skip "
                   "the copies into and out of the pickle, but the bytes still cross the pipe.")
    else:
        verdict = (f"At {at}, out-of-band buffers took {_range(oob)}, *slower* than plain "
                   f"pickling's {_range(plain)}: on this run the copies they skip cost less than "
                   "sending the buffers separately.")
    return (verdict + " That row runs on this notebook's own transport; the pools you would "
            "use pickle your arguments in-band (measured below).")


def _shared_memory_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    found = _largest_with(rows, SHM_METHODS)
    if found is None:
        return ""
    there, copied = found["shared memory"], found["copy into shared memory"]
    at = _size(there["bytes"])
    if _overlap(there, copied):
        text = (f"At {at}, copying the payload into a new segment first took {_range(copied)}, "
                f"and reading data that was already there {_range(there)}: the ranges overlap, "
                "so at this size the copy did not show.")
    else:
        text = (f"At {at}, copying the payload into a new segment first took {_range(copied)}, "
                f"{copied['seconds'] / there['seconds']:.1f}× the {_range(there)} of data that "
                "was already there: shared memory saves the transfer only when the producer "
                "writes its data there in the first place.")
    pickled = _largest_with(rows, ("pickle", "copy into shared memory"))
    if pickled is not None and pickled["pickle"]["bytes"] == there["bytes"]:
        plain = pickled["pickle"]
        if _overlap(plain, copied):
            text += (f" Against pickling, {_range(plain)}, the copy route was no clear win: "
                     "the ranges overlap.")
        elif copied["seconds"] < plain["seconds"]:
            text += (f" It still beat pickling, {_range(plain)}: one copy into the segment "
                     "instead of pickling's several.")
        else:
            text += (f" It was even slower than pickling, {_range(plain)}: a new segment's "
                     "pages are allocated as the copy first touches them, and it is unlinked "
                     "again afterwards.")
    return text


def _checksum_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    wrong = sorted({r["method"] for r in rows if not r.get("correct", True)})
    if not wrong:
        return "Every reader's checksum matched the payload's."
    return f"**Checksums did not match for: {', '.join(wrong)}.** Those numbers are not valid."


def _kernel_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    methods = {r.get("start_method") for r in rows} - {None}
    gils = {r.get("gil_enabled") for r in rows} - {None}
    parts = []
    if methods == {"fork"}:
        parts.append("This kernel starts workers with **fork**: a worker forked *after* the "
                     "data existed could read it with none of these routes (its pages are "
                     "shared copy-on-write until someone writes to them), but only data that "
                     "existed at the fork; the reader here was started first, so every byte "
                     "reached it by the route on its row.")
    elif methods == {"forkserver"}:
        parts.append("This kernel starts workers with **forkserver**: each is forked from a "
                     "server process started early, which never saw the kernel's data, so "
                     "everything a worker reads reaches it by one of these routes.")
    elif methods == {"spawn"}:
        parts.append("This kernel starts workers with **spawn**: each is a fresh interpreter "
                     "that inherits none of the kernel's data, so everything a worker reads "
                     "reaches it by one of these routes.")
    if gils:
        state = "on" if gils == {True} else "off" if gils == {False} else "on in some rows"
        parts.append(f"The thread row reads while the kernel's main thread waits, so it needs "
                     f"no parallelism: it costs the same with the GIL on or off (here it was "
                     f"{state}).")
    return " ".join(parts)


def explain_transfer(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the run showed, in Markdown, from its own rows (true whatever they show)."""
    measured = _measured(rows)
    if not measured:
        return "Nothing was measured (every size was over this machine's limits)."
    parts = [_cost_lines(measured), _small_sentence(measured), _out_of_band_sentence(measured),
             _shared_memory_sentence(measured), _checksum_sentence(measured),
             _kernel_sentence(measured)]
    return "\n\n".join(p for p in parts if p)
