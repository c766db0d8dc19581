"""Graded predictions: close or not, the placeholder, bad input, and the reasons they give
from the run's numbers (GIL on and off, more workers than CPUs)."""

import pytest
from test_threads_and_gil import fake_sweep

from helpers.experiments.eventloop import LoopRun
from helpers.view import predictions


def shown(capsys):
    return capsys.readouterr().out


def test_a_close_prediction_and_a_far_one(capsys):
    run = LoopRun("inline", 2, 0.3, 0.2, 0.8, lag=[(0.4, 0.29)])
    assert predictions.inline_lag_ms(300, run) is True
    text = shown(capsys)
    assert "You predicted **300 ms**; your run measured **290 ms**: close" in text
    assert "about 300 ms of CPU" in text
    assert predictions.inline_lag_ms(5, run) is False
    assert "98% too low" in shown(capsys)


def test_the_placeholder_and_a_non_number(capsys):
    run = LoopRun("inline", 2, 0.3, 0.2, 0.8, lag=[(0.4, 0.29)])
    assert predictions.inline_lag_ms(..., run) is False
    assert "*before* the experiment" in shown(capsys)
    assert predictions.inline_lag_ms("fast", run) is False
    assert "give a number" in shown(capsys)


@pytest.mark.parametrize(("gil_enabled", "speedup", "expected"), [
    (True, 1.0, "GIL on"), (False, 1.9, "GIL off")])
def test_thread_speedup_follows_the_recorded_gil_state(capsys, gil_enabled, speedup, expected):
    result = fake_sweep("python", speedup, gil_enabled=gil_enabled)
    assert predictions.thread_speedup(speedup, result, 2) is True
    assert expected in shown(capsys)


def test_server_throughput_names_the_cpu_ceiling(capsys):
    rows = [{"workers": w, "throughput_per_s": t} for w, t in ((1, 90.0), (4, 170.0))]
    assert predictions.server_throughput(400, rows, 4, 10, 2) is False
    text = shown(capsys)
    assert "at most 200 requests/s" in text and "take turns on 2 CPUs" in text


def test_backend_speedup(capsys):
    rows = [{"workload": "python", "backend": b, "speedup": s, "n_jobs": 2, "gil_enabled": True}
            for b, s in (("loky", 1.8), ("threading", 0.97), ("multiprocessing", 1.7))]
    assert predictions.backend_speedup(1.0, rows, "threading", "python") is True
    assert "take turns" in shown(capsys)
    assert predictions.backend_speedup(2.0, rows, "loky", "python") is True
    assert "at most 2×" in shown(capsys)


def test_process_speedup_on_one_and_two_cpus(capsys):
    from test_threads_and_gil import fake_sweep

    result = fake_sweep("python", 1.7)
    result.executor = "process"
    assert predictions.process_speedup(2, result) is True
    assert "own interpreter" in shown(capsys)


def test_first_result_by_start_method(capsys):
    rows = [{"method": "fork", "first_result_ms": 5.0},
            {"method": "spawn", "first_result_ms": 60.0}]
    assert predictions.first_result_ms(50, rows, "spawn") is True
    assert "fresh interpreter" in shown(capsys)
    assert predictions.first_result_ms(50, rows, "forkserver") is False
    assert "not available" in shown(capsys)


def test_pickle_cost_per_mib(capsys):
    rows = [{"method": "pickle", "bytes": 64 * 2**20, "seconds": 0.32},
            {"method": "pickle", "bytes": 2**20, "seconds": 0.01},
            {"method": "shared memory", "bytes": 64 * 2**20, "seconds": 0.03}]
    assert predictions.pickle_ms_per_mib(5, rows) is True
    assert "**5 ms/MiB**" in shown(capsys)


@pytest.mark.parametrize(("method", "expected"), [("spawn", "fresh interpreter"),
                                                  ("fork", "copies of this kernel")])
def test_pool_run_seconds_names_the_start_method(capsys, method, expected):
    assert predictions.pool_run_seconds(0.5, 0.45, 8, 0.05, 2, method) is True
    text = shown(capsys)
    assert "split perfectly, is 0.20 s; the rest (0.25 s)" in text and expected in text


def test_dask_over_loky(capsys):
    from helpers.core.measure import spread

    speedups = {"joblib loky": spread([1.8]), "joblib dask": spread([1.5])}
    assert predictions.dask_over_loky(0.8, speedups) is True
    assert "loky reached 1.80×, Dask 1.50×" in shown(capsys)


def test_benchmark_speedup_reads_the_summary(capsys):
    from test_diagnosis import clean_result

    result = clean_result()
    assert predictions.benchmark_speedup(7.0, result, "python", "WorkerPool") is True
    assert "8 processes" in shown(capsys)
    assert predictions.benchmark_speedup(7.0, result, "python", "threads") is True
    assert "GIL off" in shown(capsys)
    assert predictions.benchmark_speedup(1.0, {"summary": {}}, "python", "threads") is False
    assert "run the scaling part first" in shown(capsys)


def test_numpy_speedup(capsys):
    from helpers.core.measure import spread

    speedups = {"NumPy, 1 process": spread([40.0]), "pure Python, 2 processes": spread([1.8])}
    assert predictions.numpy_speedup(10, speedups) is False
    assert "40.0× on one CPU, against 1.80×" in shown(capsys)


def test_unbounded_backlog(capsys):
    run = {"tasks": 160, "workers": 2, "payload_mib": 1.0, "producer_done_after": 0.08,
           "seconds": 0.9, "peak_unfinished": 158}
    assert predictions.unbounded_backlog(150, run) is True
    text = shown(capsys)
    assert "158 tasks" in text and "a task every 0.50 ms" in text
    assert "grew to 158 of the 160 tasks" in text
    assert predictions.unbounded_backlog(4, run) is False


def test_unbounded_backlog_with_a_slow_producer(capsys):
    run = {"tasks": 10, "workers": 2, "payload_mib": 1.0, "producer_done_after": 0.9,
           "seconds": 0.9, "peak_unfinished": 2}
    predictions.unbounded_backlog(2, run)
    assert "no faster than the workers" in shown(capsys)
