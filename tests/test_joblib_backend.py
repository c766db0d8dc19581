"""joblib.Parallel on WorkerPool, through joblib itself."""

import os
import pickle
import threading
import warnings

import numpy as np
import pytest
from conftest import still_alive
from joblib import Parallel, delayed, parallel_config

from helpers.pool import WorkerCrashed, joblib_backend
from helpers.tasks import faults


@pytest.fixture(scope="module", autouse=True)
def registered():
    return joblib_backend.register()


@pytest.fixture(autouse=True)
def session():
    """joblib's temporary files in a folder of ours, removed after each test."""
    with joblib_backend.joblib_session() as folder:
        yield folder


def test_a_joblib_session_removes_its_folder_and_stops_loky():
    with joblib_backend.joblib_session() as folder, Parallel(n_jobs=2) as parallel:
        pids = set(parallel(delayed(faults.worker_pid)() for _ in range(8)))
        assert os.path.isdir(folder)
    assert not os.path.exists(folder)
    assert pids and not still_alive(pids, 5)


def test_parallel_runs_on_the_pool():
    with parallel_config(backend="worker-pool", n_jobs=2):
        assert Parallel()(delayed(pow)(i, 2) for i in range(1000)) == [i * i for i in
                                                                        range(1000)]


def test_parallel_uses_two_worker_processes():
    with parallel_config(backend="worker-pool", n_jobs=2):
        pids = Parallel(batch_size=1)(delayed(faults.sleep_for)(0.05) for _ in range(6))
    assert pids == [0.05] * 6
    with parallel_config(backend="worker-pool", n_jobs=2):
        pids = set(Parallel(batch_size=1)(delayed(faults.worker_pid)() for _ in range(20)))
    assert 1 <= len(pids) <= 2


def test_generator_output_and_errors():
    with parallel_config(backend="worker-pool", n_jobs=2):
        assert list(Parallel(return_as="generator")(delayed(abs)(-i) for i in range(5))) == \
            [0, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="boom"):
            Parallel()(delayed(faults.raise_error)("boom") for _ in range(3))


def test_pool_options_pass_through():
    with parallel_config(backend="worker-pool", n_jobs=2, max_tasks_per_child=2):
        pids = Parallel(batch_size=1)(delayed(faults.worker_pid)() for _ in range(10))
    assert len(set(pids)) >= 5


def test_a_crash_surfaces_as_worker_crashed():
    with parallel_config(backend="worker-pool", n_jobs=2), pytest.raises(WorkerCrashed):
        Parallel()(delayed(faults.exit_abruptly)(4) for _ in range(2))


def test_one_job_falls_back_to_sequential():
    with parallel_config(backend="worker-pool", n_jobs=1):
        assert Parallel()(delayed(abs)(-3) for _ in range(2)) == [3, 3]


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="unknown WorkerPool option"):
        joblib_backend.WorkerPoolBackend(max_workers=3)


def test_functions_defined_here_travel_with_cloudpickle():
    with parallel_config(backend="worker-pool", n_jobs=2):
        assert Parallel()(delayed(lambda x: x + 1)(i) for i in range(4)) == [1, 2, 3, 4]


def test_large_arrays_reach_the_workers_memory_mapped():
    with parallel_config(backend="worker-pool", n_jobs=2, max_nbytes=1):
        kinds = Parallel()(delayed(type)(np.ones(10)) for _ in range(2))
    assert kinds == [np.memmap, np.memmap]


def test_an_unpicklable_task_fails_its_call():
    with parallel_config(backend="worker-pool", n_jobs=2), pytest.raises(pickle.PicklingError):
        Parallel(batch_size=1)(delayed(id)(threading.Lock()) for _ in range(8))


def nested_parallel() -> tuple[list[int], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = Parallel(n_jobs=2, backend=joblib_backend.WorkerPoolBackend())(
            delayed(abs)(-i) for i in range(3))
    return results, [str(w.message) for w in caught]


def test_parallel_inside_a_worker_runs_sequentially():
    with parallel_config(backend="worker-pool", n_jobs=2):
        [(results, messages)] = Parallel()(delayed(nested_parallel)() for _ in range(1))
    assert results == [0, 1, 2]
    assert any("cannot be nested" in message for message in messages)


@pytest.mark.parametrize("max_pending", [1, 2])
def test_max_pending_bounds_the_pool_without_blocking_joblib(max_pending):
    with parallel_config(backend="worker-pool", n_jobs=2, max_pending=max_pending):
        assert Parallel(batch_size=1)(delayed(abs)(-i) for i in range(50)) == list(range(50))
