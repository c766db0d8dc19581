"""Nothing outlives the kernel: workers exit when their parent dies, and ignore Ctrl-C."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]

PARENT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from helpers import watchdog
import os

if __name__ == "__main__":
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(sys.argv[1]),
                               initializer=watchdog.worker_setup)
    pids = set()
    while len(pids) < 2:
        pids |= set(pool.map(os.getpid, [], timeout=30)) | {
            f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
        time.sleep(0.05)
    print(*pids, flush=True)
    time.sleep(120)
"""


def wait_gone(pids, seconds=10.0):
    deadline = time.monotonic() + seconds
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive
                 if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("method", METHODS)
def test_workers_exit_when_the_parent_is_killed(tmp_path, method):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE,
                              text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_gone(pids) == set(), "workers outlived their parent"
    finally:
        parent.kill()
        parent.wait()


def test_workers_ignore_sigint():
    from concurrent.futures import ProcessPoolExecutor

    from helpers import watchdog

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=watchdog.worker_setup) as pool:
        pid = pool.submit(os.getpid).result(timeout=30)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert pool.submit(os.getpid).result(timeout=30) == pid
