"""The plain code the notebooks show beside their experiments runs, and does what it says,
under the start method the notebooks use."""

import asyncio
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.core import config, workloads
from helpers.experiments import plain
from helpers.pool import WorkerPool


def test_processes_and_threads_time_the_same_job():
    items = [2] * 8
    assert plain.time_on_processes(workloads.python_loop, items, 2, chunksize=2) > 0
    assert plain.time_on_threads(workloads.python_loop, items, 2) > 0


def test_offload_returns_what_the_function_returned():
    with WorkerPool(1, mp_context=config.mp_context()) as pool:
        assert asyncio.run(plain.offload(pool, workloads.python_loop, 3)) == \
            workloads.python_loop(3)


def test_joblib_keeps_the_order():
    from helpers.pool.joblib_backend import joblib_session

    with joblib_session():
        assert plain.run_with_joblib(abs, [-1, -2, -3], 2) == [1, 2, 3]


def test_shared_memory_is_read_by_name_and_removed():
    data = os.urandom(100_000)
    with WorkerPool(1, mp_context=config.mp_context()) as pool:
        assert plain.sum_in_shared_memory(data, pool) == zlib.adler32(data)


def _ask_all_at_once(address, clients):
    """Open every connection before sending on any: a worker that accepted one waits for
    its request, so the others are taken by other workers. Returns the answering pids."""
    import socket
    import time

    connections = [socket.create_connection(address, timeout=10) for _ in range(clients)]
    time.sleep(0.1)  # time for every worker to accept one
    answers = []
    for connection in connections:
        with connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := connection.recv(4096):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 200 OK\r\n\r\n"), reply
        answers.append(int(reply.split(b"\r\n\r\n", 1)[1]))
    return answers


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is Unix-only (no fork on Windows)")
def test_prefork_server_shares_one_socket_and_leaves_no_process():
    import psutil

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    with plain.prefork_server(workers=2) as address:
        pids = []  # two rounds (workers go on serving); more only if a busy machine
        while len(pids) < 20 and (len(pids) < 4 or len(set(pids)) < 2):  # let one take both
            pids += _ask_all_at_once(address, clients=2)
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two workers answered
    for pid in pids:  # stopped and reaped: no zombie, no orphan
        assert not psutil.pid_exists(pid)
    after = {child.pid for child in psutil.Process().children(recursive=True)}
    assert after <= before


def test_the_same_joblib_line_runs_on_dask_workers():
    from helpers.tasks import faults

    pids = plain.run_on_dask(faults.worker_pid, list(range(8)), workers=2)
    assert len(pids) == 8 and os.getpid() not in pids  # every task ran in a Dask worker


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is Unix-only (no fork on Windows)")
def test_prefork_workers_exit_when_their_parent_is_killed():
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = ("import sys\nfrom helpers.experiments import plain\n"
              "with plain.prefork_server(workers=2) as address:\n"
              "    print(address[1], flush=True)\n    sys.stdin.read()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(parent.stdout.readline())
        pids = set(_ask_all_at_once(("127.0.0.1", port), clients=2))
        workers = psutil.Process(parent.pid).children()
        assert pids <= {w.pid for w in workers} and len(workers) == 2
    finally:
        parent.send_signal(signal.SIGKILL)  # no chance to stop its workers
        parent.wait()
    def running(process):
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 10
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(running, workers)), "a worker outlived its parent"


def test_run_bounded_never_has_more_than_its_bound_in_flight():
    running, most, lock = 0, 0, threading.Lock()

    def task(x):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return x * 2

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert plain.run_bounded(pool, task, range(40), in_flight=3) == [2 * x for x in range(40)]
    assert 1 <= most <= 3
