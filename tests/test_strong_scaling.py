"""The scaling experiment, end to end, on the start methods learners meet."""

import multiprocessing

import pytest

from helpers.core import config
from helpers.experiments import strong_scaling

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


def small_run(**overrides):
    arguments = dict(workers=[1, 2], workload="python", task_seconds=0.005, repeats=2,
                     budget_seconds=0.3, progress=False)
    arguments.update(overrides)
    return strong_scaling.run_scaling(**arguments)


@pytest.mark.parametrize("method", METHODS)
def test_process_scaling_records_every_run(method):
    result = small_run(start_method=method)
    assert len(result.measurements) == 4  # 2 worker counts × 2 repeats
    assert {m.start_method for m in result.measurements} == {method}
    assert result.tasks % 2 == 0 and result.tasks >= 8
    # each worker count's timeline shows that many distinct worker processes at most
    assert len({r.worker for r in result.traces[1]}) == 1
    assert 1 <= len({r.worker for r in result.traces[2]}) <= 2
    assert all(r.started <= r.finished for r in result.traces[2])
    assert set(result.speedups()) == {1, 2}
    assert result.mode == config.mode() == result.measurements[0].mode  # drawn beside this mode
    assert result.document()["records"][0]["experiment"] == "scaling"
    best = 2 if result.usable_cpus >= 2 else 1  # the count explain() reports on
    text = result.explain()  # quotes this run's own median speedup, whatever it was
    assert f"With **{best} workers** the job ran **{result.speedups()[best].median:.2f}×" in text


def test_thread_executor_records_thread_names():
    result = small_run(executor="thread", workload="sha256")
    assert result.start_method is None
    assert all("thread" in r.worker for r in result.traces[2])


def test_default_worker_counts():
    assert strong_scaling.default_worker_counts(3) == [1, 2, 3]
    assert strong_scaling.default_worker_counts(12) == [1, 2, 4, 8, 12]


@pytest.mark.parametrize(("arguments", "message"), [
    ({"workers": [0]}, "worker count 0 is not allowed"),
    ({"workers": [1000]}, "whole numbers from 1 to"),
    ({"workers": [1.5]}, "not allowed"),
    ({"executor": "cluster"}, "executor 'cluster'"),
    ({"task_seconds": 60}, "out of range"),
    ({"repeats": 0}, "repeats=0"),
    ({"workload": "fortran"}, "choose one of"),
])
def test_bad_parameters_say_what_is_allowed(arguments, message):
    with pytest.raises(ValueError, match=message):
        small_run(**arguments)


def test_one_worker_only_explains_itself():
    result = small_run(workers=[1])
    assert result.fit() is None
    assert "no speedup to report" in result.explain()


def test_one_executor_factory_for_every_experiment():
    from helpers.experiments import executors

    with executors.make_executor("thread", 2) as pool:
        executors.warm_up(pool, 2)
        assert pool.submit(abs, -3).result() == 3
    with pytest.raises(TypeError, match="WorkerPool's"):
        executors.make_executor("thread", 1, task_timeout=1.0)
    with pytest.raises(ValueError, match="not one of: thread, process, WorkerPool"):
        executors.make_executor("cluster", 1)
