"""Nothing outlives the kernel: workers exit when their parent dies, and ignore Ctrl-C."""

import multiprocessing
import os
import signal
import time

import pytest
from conftest import orphans_after_killing_parent

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]

PARENT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from helpers.core import watchdog
import os

if __name__ == "__main__":
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(sys.argv[1]),
                               initializer=watchdog.worker_setup)
    pids = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2:
        if time.monotonic() > deadline:  # prints nothing: the test fails and says so
            sys.exit(f"only {len(pids)} of 2 workers ran a task in 60 s")
        pids |= {f.result(timeout=30) for f in [pool.submit(os.getpid) for _ in range(4)]}
        time.sleep(0.05)
    print(*pids, flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("method", METHODS)
def test_workers_exit_when_the_parent_is_killed(tmp_path, method):
    assert orphans_after_killing_parent(PARENT, method, tmp_path) == set()


def test_workers_ignore_sigint():
    from concurrent.futures import ProcessPoolExecutor

    from helpers.core import watchdog

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=watchdog.worker_setup) as pool:
        pid = pool.submit(os.getpid).result(timeout=30)
        os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert pool.submit(os.getpid).result(timeout=30) == pid
