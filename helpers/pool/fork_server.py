"""Under the fork start method, the pool's workers (all but its first) are forked from
a single-threaded fork server.

A replacement worker has to be started while the pool runs, from one of the pool's
helper threads, and so does a worker the pool starts once work waits for it. ``fork()``
from a process with several threads copies only the calling thread, and any lock another
thread held at that moment stays locked for ever in the child (CPython warns: "This
process is multi-threaded, use of fork() may lead to deadlocks in the child", and
refuses ``max_tasks_per_child`` with fork for this reason). So, under fork, the pool
forks *one* extra process when it is created, before its own threads start, and every
later worker is forked from that process, which never starts a thread::

    the pool (many threads) ──fork, once──► fork server (one thread)
         │  "start slot 3"   ─────────────────►  │ fork (a Process of its own)
         │  ◄── pid, the parent end of the ◄──── │──────────► worker
         │   worker's pipe and a pidfd (SCM_RIGHTS)             (own pipe to the pool)
         │  "wait for pid"   ─────────────────►  │ process.join()
         │  ◄──────────────────────── exit code ◄─┘

The pool forks its *first* worker itself, from the thread that creates it, right after
the server and before the pool's own threads start, as ``multiprocessing.Pool`` and
``ProcessPoolExecutor`` fork theirs. The server forks the others, once work waits for
them (as ``ProcessPoolExecutor`` starts its workers under spawn and forkserver): each
fork of a process as big as the pool's costs a few milliseconds of CPU, in the parent
and in the new process, and on a small machine every process forked at once delays the
first result. Either way, every worker is a copy of the pool's process as it was when
the pool was created, so a function defined in a notebook before the pool works in every
worker alike (one defined after it, in none).
Cost: one extra process per pool (the pool benchmark's first-result figure measures
it). Unix only, like fork itself.

The server prints nothing, so it sets its standard streams aside: a copy of a stream
another thread was writing to at the fork has a lock no thread of the server will ever
release, and multiprocessing flushes the streams before each fork (``serve`` explains).

Standard library only.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
from multiprocessing import reduction
from typing import Any

from helpers.pool import worker_process
from helpers.pool.ledger import join_process, open_pidfd
from helpers.pool.messages import ProgressBoard


class ForkServer:
    """The pool's side: ask for workers, learn how they ended."""

    def __init__(self, context: multiprocessing.context.BaseContext, board: ProgressBoard,
                 worker_args: tuple[Any, ...]) -> None:
        self._lock = threading.Lock()  # one request at a time
        self._conn, server_end = context.Pipe(duplex=True)
        self.process = context.Process(target=serve, args=(server_end, board, worker_args),
                                       name="WorkerPool-fork-server", daemon=True)
        self.process.start()
        server_end.close()

    def start_worker(self, slot: int) -> tuple[ForkedWorker, multiprocessing.connection.Connection]:
        """Fork a worker for ``slot``; return its handle and the parent's end of its pipe.

        The handle carries a pidfd where the platform has one, opened by the server
        straight after the fork, before it could reap the worker, so it always names
        this worker, never another process that reused its pid.
        """
        with self._lock:
            self._conn.send_bytes(pickle.dumps(("start", slot)))
            pid, has_pidfd = _reply(self._conn)
            fd = reduction.recv_handle(self._conn)
            pidfd = reduction.recv_handle(self._conn) if has_pidfd else None
        return ForkedWorker(pid, self, pidfd), multiprocessing.connection.Connection(fd)

    def wait(self, pid: int, timeout: float) -> int | None:
        """The worker's exit code once it has exited (None if still running at ``timeout``)."""
        with self._lock:
            self._conn.send_bytes(pickle.dumps(("wait", pid, timeout)))
            return _reply(self._conn)

    def close(self) -> None:
        """Stop the server (it kills and reaps any worker still running) and reap it."""
        with self._lock:
            try:
                self._conn.send_bytes(pickle.dumps(("stop",)))
            except OSError:
                pass
            self._conn.close()
        self.process.join(timeout=5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()


class ServerError:
    """The fork server's reply when a request failed; the pool raises it as OSError."""

    def __init__(self, text: str) -> None:
        self.text = text


def _reply(conn) -> Any:
    reply = pickle.loads(conn.recv_bytes())
    if isinstance(reply, ServerError):
        raise OSError(f"the pool's fork server could not do it: {reply.text}")
    return reply


class ForkedWorker:
    """A worker forked by the fork server: what ``multiprocessing.Process`` offers the pool."""

    # Not our child, so no sentinel of ours: the pool sees its death on its pidfd (Linux),
    # and otherwise only as end-of-file on its pipe (which a grandchild the task forked
    # can hold open: the worker's crash is then noticed when that grandchild exits).
    sentinel = None

    def __init__(self, pid: int, server: ForkServer, pidfd: int | None = None) -> None:
        self.pid = pid
        self.pidfd = pidfd  # the pool's Worker takes it over (and closes it)
        self.exitcode: int | None = None
        self._server = server

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def join(self, timeout: float | None = None) -> None:
        if self.exitcode is None:
            self.exitcode = self._server.wait(self.pid, 60.0 if timeout is None else timeout)

    def is_alive(self) -> bool:
        self.join(0)
        return self.exitcode is None

    def _signal(self, signum: int) -> None:
        if self.exitcode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


# --- the server process ---


def serve(conn, board: ProgressBoard, worker_args: tuple[Any, ...]) -> None:
    """The fork server's loop: one thread, requests from the pool, until stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the kernel
    # This process prints nothing. The streams it was forked with may hold a lock that
    # another thread of the pool's process held at that moment, and that stays held here
    # for ever; multiprocessing flushes sys.stdout and sys.stderr before every fork and at
    # exit, and would wait on it. So the server sets them aside, and hands them back to
    # each worker (which prints where the pool's process prints).
    streams = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = None
    # The pool sees this process as daemonic (it never outlives the pool); to start
    # workers of its own, it must not be one in its own eyes.
    multiprocessing.current_process().daemon = False
    fork = multiprocessing.get_context("fork")
    parent = multiprocessing.parent_process()
    workers: dict[int, multiprocessing.Process] = {}
    watch = [conn] if parent is None else [conn, parent.sentinel]
    while True:
        ready = multiprocessing.connection.wait(watch)
        if conn not in ready:
            break  # the pool's process has gone
        try:
            request = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        if request[0] == "stop":
            break
        try:
            if request[0] == "start":
                process, parent_end = _start_worker(fork, board, request[1],
                                                    (streams, *worker_args))
                workers[process.pid] = process
                pidfd = open_pidfd(process.pid)  # not reaped yet: it names this worker
                conn.send_bytes(pickle.dumps((process.pid, pidfd is not None)))
                reduction.send_handle(conn, parent_end.fileno(), 0)
                parent_end.close()
                if pidfd is not None:
                    reduction.send_handle(conn, pidfd, 0)
                    os.close(pidfd)
            else:  # "wait"
                _, pid, timeout = request
                process = workers[pid]
                join_process(process, timeout)
                if process.exitcode is not None:
                    del workers[pid]
                conn.send_bytes(pickle.dumps(process.exitcode))
        except Exception as error:  # e.g. fork() failed (EAGAIN, ENOMEM): say so, go on
            conn.send_bytes(pickle.dumps(ServerError(f"{type(error).__name__}: {error}")))
    for process in workers.values():  # whatever is still running goes with us
        process.kill()
    for process in workers.values():
        join_process(process, 5)


def _start_worker(fork, board: ProgressBoard, slot: int, worker_args: tuple[Any, ...]):
    """Fork one worker (a multiprocessing child of this server) with a pipe of its own."""
    parent_end, child_end = fork.Pipe(duplex=True)
    board.reset(slot)
    process = fork.Process(target=_worker_main,
                           args=(child_end, board, slot, *worker_args),
                           name="WorkerPool-worker", daemon=True)
    process.start()
    child_end.close()
    return process, parent_end


def _worker_main(conn, board: ProgressBoard, slot: int, streams: tuple[Any, Any],
                 *worker_args: Any) -> None:
    """A worker forked here: its standard streams back, then ``worker_main``."""
    sys.stdout, sys.stderr = streams
    worker_process.worker_main(conn, board, slot, *worker_args)
