"""Notebook 08's explanations, run on made-up records: every branch, every start method,
the GIL on and off, and Python versions before and after 3.13.

The records have the shape the experiments return (``helpers.experiments.*``); the
numbers are chosen to put each explanation into one branch.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from helpers.core import machine
from helpers.core.measure import spread
from helpers.experiments import advisor, production_patterns, sizing
from helpers.view import explain_production as explain
from helpers.view import production_plots

MODEL = advisor.CostModel(per_task_seconds=60e-6, seconds_per_byte=2e-9, start_seconds=0.05,
                          thread_per_task_seconds=5e-6, start_method="spawn", source="test")
START_METHODS = ("fork", "forkserver", "spawn")


@pytest.fixture
def gil_off(monkeypatch):
    """This process, as a free-threaded kernel running with the GIL off would report it."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert not machine.gil_enabled()


# --- 1. serial first ---


def _serial(numpy: float, processes: float, same: bool = True):
    rows = [{"way": "pure Python, 1 process", "repeat": 0, "seconds": 1.0, "same_labels": same,
             "workers": 4}]
    speedups = {"pure Python, 1 process": spread([1.0]),
                "pure Python, 4 processes": spread([processes]),
                "NumPy, 1 process": spread([numpy])}
    return rows, speedups


def test_serial_first_when_numpy_wins():
    text = explain.explain_serial_first(*_serial(numpy=12.0, processes=3.2))
    assert "**3.2×** on 4 CPU(s)" in text and "**12×**" in text
    assert "Vectorising beat every process here" in text
    assert "identical labels" in text


def test_serial_first_when_processes_win_and_labels_differ():
    text = explain.explain_serial_first(*_serial(numpy=0.8, processes=3.5, same=False))
    assert "**0.80×**" in text
    assert "the 4 processes beat NumPy" in text
    assert "labels differ" in text and "no faster than one process" not in text
    slow = explain.explain_serial_first(*_serial(numpy=20.0, processes=0.96))
    assert "no faster than one process here" in slow
    rows, speedups = _serial(numpy=20.0, processes=0.9)
    alone = explain.explain_serial_first([rows[0] | {"workers": 1}], speedups)
    assert "With one usable CPU" in alone and "no faster" not in alone


# --- 2. sizing: CPU counts, by Python version ---


def _counts(python=(3, 11), **changes):
    record = {"python": list(python), "platform": "linux", "cpu_count": 8,
              "process_cpu_count": None if tuple(python) < (3, 13) else 8, "affinity": 8,
              "quota": None, "usable": 8, "override": None, "default_workers": 8}
    return record | changes


def test_cpu_counts_before_3_13_name_the_kernel_and_what_is_missing():
    text = explain.explain_cpu_counts(_counts(python=(3, 11), affinity=2, usable=2))
    assert "Your kernel, Python 3.11, has no `os.process_cpu_count()`" in text
    assert "starts `os.cpu_count()` workers: **8**" in text
    assert "**8 workers for 2 usable CPU(s)**: oversubscribed" in text
    assert "Both arrived in 3.13: on Python 3.11 they are ignored" in text
    assert "No cgroup quota limits this kernel" in text


def test_cpu_counts_from_3_13_see_the_affinity_but_not_the_quota():
    record = _counts(python=(3, 14), process_cpu_count=2, affinity=2, quota=1.5, usable=2,
                     default_workers=2)
    text = explain.explain_cpu_counts(record)
    assert "Your kernel, Python 3.14, has **`os.process_cpu_count()` = 2**" in text
    assert "fewer than the 8 of `os.cpu_count()`" in text
    assert "does not exceed the 2 usable CPU(s)" in text
    assert "cgroup quota of **1.5 CPUs**" in text and "Neither" in text
    assert "start Python with `PYTHON_CPU_COUNT=2`" in text
    assert "no `os.process_cpu_count()`" not in text


def test_cpu_counts_report_an_override_and_windows_cap():
    text = explain.explain_cpu_counts(_counts(python=(3, 13), override="PYTHON_CPU_COUNT=2",
                                              platform="win32"))
    assert "started with `PYTHON_CPU_COUNT=2`" in text
    assert "capped at 61" in text
    assert "set by the override below" in text and "nothing narrows" not in text
    plain = explain.explain_cpu_counts(_counts(python=(3, 13)))
    assert "nothing narrows the affinity here" in plain and "capped" not in plain


def test_the_cpu_count_record_matches_this_python():
    record = sizing.cpu_count_record()
    assert tuple(record["python"]) == sys.version_info[:2]
    assert record["cpu_count"] >= record["usable"] >= 1
    assert (record["process_cpu_count"] is None) == (sys.version_info < (3, 13))
    with ProcessPoolExecutor() as pool:  # starts no process until something is submitted
        assert record["default_workers"] == pool._max_workers
    assert explain.explain_cpu_counts(record).startswith(
        f"- Your kernel, Python {sys.version_info.major}.{sys.version_info.minor}")
    seen = sizing.what_this_process_sees(record)
    assert seen["ProcessPoolExecutor() default workers"] == record["default_workers"]


def test_default_process_workers_follows_the_documented_rule(monkeypatch):
    monkeypatch.setattr(sizing.os, "cpu_count", lambda: 128)
    monkeypatch.setattr(sizing.os, "process_cpu_count", lambda: 4, raising=False)
    assert sizing.default_process_workers((3, 12)) == 128
    assert sizing.default_process_workers((3, 13)) == 4
    assert sizing.default_process_workers((3, 12), platform="win32") == 61


@pytest.mark.parametrize("version, xoptions, environ, expected", [
    ((3, 12), {"cpu_count": "2"}, {"PYTHON_CPU_COUNT": "3"}, None),
    ((3, 13), {"cpu_count": "2"}, {"PYTHON_CPU_COUNT": "3"}, "-X cpu_count=2"),
    ((3, 13), {}, {"PYTHON_CPU_COUNT": "3"}, "PYTHON_CPU_COUNT=3"),
    ((3, 14), {"cpu_count": "default"}, {"PYTHON_CPU_COUNT": "default"}, None),
    ((3, 14), {}, {}, None),
])
def test_cpu_count_override(version, xoptions, environ, expected):
    assert sizing.cpu_count_override(version, xoptions, environ) == expected


# --- 2. sizing: the smaller machine ---


def _smaller(seconds: float, wall_ms: float = 60.0):
    return {"usable": 1, "cpu_count": 2, "rows": [
        {"workers": 1, "seconds": 0.30, "task_wall_ms": 20.0},
        {"workers": 4, "seconds": seconds, "task_wall_ms": wall_ms}]}


def test_smaller_machine_about_as_long_costs_latency_not_throughput():
    text = explain.explain_smaller_machine(_smaller(0.31))
    assert "about as long" in text
    assert "each task now took 60 ms from start to finish, against 20 ms" in text
    assert "mostly latency and memory, not throughput" in text
    assert "notebook 04's heatmap" in text and "several-fold" in text
    assert "never throughput" not in text


def test_smaller_machine_slower_says_it_cost_throughput_too():
    text = explain.explain_smaller_machine(_smaller(0.45))
    assert "50% longer" in text
    assert "and here some throughput too" in text
    assert "not throughput" not in text


def test_smaller_machine_faster_and_without_overlap():
    text = explain.explain_smaller_machine(_smaller(0.2, wall_ms=22.0))
    assert "they add no CPU time" in text
    assert "seldom overlapped" in text


def test_smaller_machine_skipped_or_short():
    assert "No measurement on this platform" in explain.explain_smaller_machine(None)
    one_row = {"usable": 1, "rows": _smaller(0.3)["rows"][:1]}
    assert "fewer than two" in explain.explain_smaller_machine(one_row)


# --- 3. recycling ---


def _leaky(every, leak: float, tasks: int = 12, method: str = "spawn"):
    rows, pids, rss = [], {}, {}
    for task in range(tasks):
        pid = 100 + task % 2 if every is None else 100 + task // every
        rss[pid] = rss.get(pid, 50.0) + (leak if pid in pids else 0)
        pids[pid] = True
        rows.append({"task": task, "pid": pid, "rss_mib": rss[pid],
                     "max_tasks_per_child": every, "start_method": method})
    return rows


@pytest.mark.parametrize("method", START_METHODS)
def test_recycling_names_the_growth_and_the_start_method(method):
    runs = {"no recycling": _leaky(None, 4.0, method=method),
            "max_tasks_per_child=3": _leaky(3, 4.0, method=method)}
    text = explain.explain_recycling(runs, 4.0, MODEL.start_seconds)
    assert "about **4.0 MiB**" in text
    assert "grew by **20 MiB**" in text  # 6 tasks per worker: 5 steps of 4 MiB
    assert "no worker grew by more than **8 MiB**: 4 worker processes" in text
    assert f"starting a process ({method})" in text and "50 ms here" in text
    assert "did not cap" not in text


def test_recycling_when_the_leak_does_not_show_under_fork():
    runs = {"no recycling": _leaky(None, 0.0, method="fork"),
            "max_tasks_per_child=3": _leaky(3, 0.0, method="fork")}
    text = explain.explain_recycling(runs, 0.0, MODEL.start_seconds)
    assert "hardly shows in RSS" in text and "Under fork" in text
    assert "did not cap the growth" in text
    spawned = {k: [r | {"start_method": "spawn"} for r in v] for k, v in runs.items()}
    assert "Under fork" not in explain.explain_recycling(spawned, 0.0, MODEL.start_seconds)


# --- 4. timeouts ---


def _thread_row(**changes):
    return {"way": "thread + result(timeout)", "raised": "TimeoutError", "gave_up_after_s": 0.2,
            "cancel_worked": False, "stuck_ended_after_s": 1.0, "next_task_after_s": 1.0,
            "stuck_seconds": 1.0, "gil_enabled": True} | changes


def _pool_row(**changes):
    return {"way": "WorkerPool(task_timeout)", "raised": "TaskTimeout", "gave_up_after_s": 0.21,
            "cancel_worked": None, "stuck_ended_after_s": 0.21, "next_task_after_s": 0.35,
            "worker_replaced": True, "stuck_seconds": 1.0, "start_method": "spawn"} | changes


@pytest.mark.parametrize("method", START_METHODS)
def test_timeouts_with_the_gil_on(method):
    text = explain.explain_timeouts(_thread_row(), _pool_row(start_method=method))
    assert "gave up after 0.20 s (TimeoutError)" in text and "ran to its end (1.00 s)" in text
    assert "takes turns on the GIL" in text
    assert f"started a replacement ({method}) and ran the next task by 0.35 s" in text
    assert "shares nothing" not in text


def test_timeouts_with_the_gil_off():
    text = explain.explain_timeouts(_thread_row(gil_enabled=False), _pool_row())
    assert "free-threaded kernel" in text and "takes turns on the GIL" not in text


def test_timeouts_when_nothing_timed_out():
    text = explain.explain_timeouts(_thread_row(raised=None, stuck_ended_after_s=0.1),
                                    _pool_row(raised=None, worker_replaced=False))
    assert "nothing to stop" in text and "was not timed out" in text
    cancelled = explain.explain_timeouts(_thread_row(cancel_worked=True),
                                         _pool_row(worker_replaced=False))
    assert "had not started yet" in cancelled and "showed no new process" in cancelled


def test_the_thread_timeout_records_the_gil_state(gil_off):
    row = production_patterns.thread_timeout(stuck_seconds=1.0, timeout=0.3)
    assert row["gil_enabled"] is False
    assert "free-threaded kernel" in explain.explain_timeouts(row, _pool_row())
    assert set(production_patterns.TIMEOUT_COLUMNS) <= set(row) | {"worker_replaced"}


# --- 5. backpressure ---


def _pressure(bounded: bool, seconds: float, extra: float, unfinished: int,
              tail: float | None = None):
    baseline = 100.0
    samples = [{"t": 0.0, "unfinished": 0, "rss_mib": baseline},
               {"t": 0.5, "unfinished": unfinished, "rss_mib": baseline + extra},
               {"t": 1.0, "unfinished": 0, "rss_mib": baseline + (extra if tail is None else tail)}]
    return {"bounded": bounded, "workers": 2, "limit": 4 if bounded else None, "seconds": seconds,
            "producer_done_after": 0.1 if not bounded else seconds, "baseline_rss_mib": baseline,
            "samples": samples, "peak_unfinished": unfinished, "peak_extra_mib": extra,
            "start_method": "forkserver"}


def test_backpressure_same_pace_and_memory_kept():
    text = explain.explain_backpressure(_pressure(False, 1.0, 80.0, 78),
                                        _pressure(True, 1.05, 5.0, 4))
    assert "up to **78 tasks**" in text
    assert "a semaphore of 4, at most 4 tasks were unfinished" in text
    assert "about the same" in text and "stays high after the queue drains" in text
    assert "did not show the difference" not in text


def test_backpressure_slower_and_memory_released():
    text = explain.explain_backpressure(_pressure(False, 1.0, 80.0, 78, tail=2.0),
                                        _pressure(True, 1.3, 5.0, 4))
    assert "bounding cost 30% in this one run of each" in text
    assert "stays high" not in text and "The peak is what the OOM killer sees" in text


def test_backpressure_faster_and_memory_not_showing():
    text = explain.explain_backpressure(_pressure(False, 1.0, 3.0, 78),
                                        _pressure(True, 0.8, 4.0, 4))
    assert "finished sooner" in text and "did not show the difference" in text


# --- 6. graceful shutdown ---


def _shutdown(**changes):
    return {"jobs": 30, "completed": 8, "not started (reported back)": 22,
            "in flight at SIGTERM": 2, "stopped by": "SIGTERM", "every job accounted for": True,
            "each done job ran exactly once": True, "in-flight jobs finished": True,
            "jobs that ran twice": [], "exit_code": 0,
            "seconds_from_sigterm_to_exit": 0.4} | changes


def test_shutdown_that_lost_nothing():
    text = explain.explain_shutdown(_shutdown())
    assert "8 jobs were done (the 2 in flight at SIGTERM included) and 22" in text
    assert "Every job is accounted for" in text and "well inside" in text


def test_shutdown_that_lost_and_doubled_jobs_and_overran_the_grace_period():
    text = explain.explain_shutdown(_shutdown(**{
        "every job accounted for": False, "each done job ran exactly once": False,
        "jobs that ran twice": [3, 5], "in-flight jobs finished": False,
        "seconds_from_sigterm_to_exit": 31.0, "exit_code": -9}))
    assert "Not every job is accounted for" in text and "(3, 5)" in text
    assert "not all of the 2 in flight" in text and "past Kubernetes' default 30 s" in text
    assert "Every job is accounted for" not in text


def test_shutdown_skipped():
    assert "Windows" in explain.explain_shutdown(None)


# --- 7. observability ---


def _observed(busy):
    return {"tasks": 60, "wall_seconds": 0.6,
            "queue_wait_ms": {"p50": 100.0, "p95": 250.0, "max": 300.0},
            "run_ms": {"p50": 5.0, "p95": 100.0, "max": 101.0},
            "workers": [{"worker": f"pid {i}", "tasks": 30, "busy_seconds": b,
                         "utilisation": "90%"} for i, b in enumerate(busy)]}


def test_observed_balanced_unbalanced_and_alone():
    assert "about the same work (0.50–0.55 s" in explain.explain_observed(_observed([0.5, 0.55]))
    assert "uneven amounts of work" in explain.explain_observed(_observed([0.2, 0.55]))
    alone = explain.explain_observed(_observed([0.55]))
    assert "workers did" not in alone and "| pid 0 |" in alone


# --- 9. advice and the money side ---


def _advice(within=True, spread_=0.1, gil=True):
    return {"case": "tiny job", "advice": "serial", "fastest": "serial" if within else "threads",
            "advice_within_15pc": within, "spread": spread_, "gil_enabled": gil}


def test_advice_agreement_misses_noise_and_gil_off():
    assert "**2 of 2**" in explain.explain_advice([_advice(), _advice()])
    text = explain.explain_advice([_advice(), _advice(within=False, spread_=0.5, gil=False)])
    assert "**1 of 2**" in text and "advised serial, fastest threads" in text
    assert "more than 30 % in: tiny job" in text and "GIL off" in text
    assert "GIL off" not in explain.explain_advice([_advice()])


def test_check_advice_records_the_gil_state_and_the_notebook_hides_it():
    assert {"spread", "median_seconds", "gil_enabled"} == set(production_patterns.ADVICE_HIDDEN)


def test_money_with_and_without_reference_machines():
    measured = {"reference: Some CPU, 16 CPUs": {1: spread([1.0]), 16: spread([9.6, 10.2])}}
    text = explain.explain_money(MODEL, measured)
    assert "Some CPU, 16 CPUs measured 9.9× on 16 workers" in text
    assert "each paid core did 62% of a core's work" in text
    assert "less than the 50 ms it takes to start a pool here" in text
    fast_start = advisor.CostModel(60e-6, 2e-9, 0.004, 5e-6, "fork", "test")
    text = explain.explain_money(fast_start, {"reference: x": {1: spread([1.0])}})
    assert "a *vCPU* is one hyper-thread" in text
    assert "No reference machine" in text and "while starting a pool takes 4 ms" in text


# --- the decision chart's titles ---


def test_decision_chart_titles_follow_the_gil(gil_off):
    fig = production_plots.decision_chart(MODEL, 4, tasks=100)
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == ["pure Python (GIL off on this kernel)", "work releases the GIL"]


@pytest.mark.parametrize(("per_core", "vm", "expected"), [
    (2, None, "2 logical CPUs per physical core"),
    (1, "KVM", "cannot be trusted to show"),
    (1, None, "half of a physical core"),
])
def test_the_money_explanation_says_what_a_vcpu_is_on_this_machine(per_core, vm, expected):
    import types

    card = types.SimpleNamespace(threads_per_core=per_core, virtualisation=vm)
    text = explain.explain_money(MODEL, {"reference: x": {1: spread([1.0])}}, card=card)
    assert expected in text


def test_backpressure_whose_bound_never_bites_says_so():
    unbounded = _pressure(False, 1.0, 3.0, 9)
    bounded = dict(_pressure(True, 1.1, 3.0, 10), limit=32)
    text = explain.explain_backpressure(unbounded, bounded)
    assert "The bound never came into play" in text and "a semaphore of 32" in text
    assert "bounding cost" not in text and "did not show the difference" not in text
