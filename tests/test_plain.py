"""The plain code the notebooks show beside their experiments runs, and does what it says,
under the start method the notebooks use."""

import asyncio
import os
import zlib

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
