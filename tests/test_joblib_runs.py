"""Notebook 04's experiments: behaviour and shapes, not speed."""

import pytest

from helpers.core import machine
from helpers.experiments import joblib_runs
from helpers.view import tables


def test_where_tasks_run_tells_processes_from_threads():
    rows = {r["asked"]: r for r in joblib_runs.where_tasks_run(n_jobs=2)}
    assert rows["backend='threading'"]["in_this_process"] is True
    assert rows["prefer='threads'"]["in_this_process"] is True
    assert rows["require='sharedmem'"]["in_this_process"] is True
    assert rows["backend='loky' (the default)"]["in_this_process"] is False
    assert rows["backend='worker-pool'"]["in_this_process"] is False


def test_cpu_counts_agree_with_the_machine_card_here():
    counts = joblib_runs.cpu_counts()
    assert counts["joblib.cpu_count() (what n_jobs=-1 uses)"] >= 1
    assert counts["machine card: usable CPUs"] <= counts["os.cpu_count()"]


@pytest.mark.slow
def test_backends_and_batching_report_every_configuration():
    rows = joblib_runs.backends(("python",), n_jobs=2, task_ms=2, tasks=8, repeats=1)
    assert [r["backend"] for r in rows] == list(joblib_runs.BACKENDS)
    assert all(r["low"] <= r["speedup"] <= r["high"] for r in rows)
    assert all(r["gil_enabled"] is machine.gil_enabled() for r in rows)
    rows = joblib_runs.batching(n_jobs=2, tiny_tasks=400, repeats=1)
    assert {(r["job"], r["batch_size"]) for r in rows} == {
        (job, size) for job in ("tiny tasks", "tiny, then heavy", "tiny and heavy, shuffled")
        for size in ("auto", "1")}


@pytest.mark.parametrize(("gil_enabled", "expected", "absent"), [
    (True, "one at a time", "GIL **off**"), (False, "GIL **off**", "one at a time")])
def test_the_backend_explanation_follows_the_recorded_gil_state(gil_enabled, expected, absent):
    rows = [{"workload": w, "backend": b, "speedup": 1.5, "low": 1.4, "high": 1.6,
             "gil_enabled": gil_enabled}
            for w in ("python", "sha256") for b in joblib_runs.BACKENDS]
    text = joblib_runs.explain_backends(rows)
    assert "- python, **threading**: 1.50× (range 1.40–1.60)" in text
    assert expected in text and absent not in text


def test_streaming_yields_every_result():
    assert len(list(joblib_runs.streaming(n_jobs=2, tasks=6, task_ms=2))) == 6


def test_memmapping_is_correct_both_ways():
    rows = joblib_runs.memmapping(megabytes=8, n_jobs=2, tasks=4)
    assert len(rows) == 2 and all(r["correct"] for r in rows)


def test_caching_reads_the_second_call_from_disk():
    result = joblib_runs.caching(rows=300)
    assert result["same_result"] is True
    assert result["second_call_s"] < result["first_call_s"]


def test_oversubscription_fills_the_grid_and_is_explained():
    heat = joblib_runs.oversubscription(workers=[1, 2], threads=[1, 2], tasks=2,
                                               repeats=1)
    assert set(heat["seconds"]) == {(1, 1), (1, 2), (2, 1), (2, 2)}
    # every cell ran as labelled, the one-worker row too (joblib runs it in this process
    # and ignores inner_max_num_threads: the experiment limits this process's BLAS itself)
    assert heat["ran_with"] == {(w, t): t for w in (1, 2) for t in (1, 2)}
    text = joblib_runs.explain_oversubscription(heat)
    assert "Fastest" in text and "Slowest" in text and "One worker" in text
    assert "did not get" not in text


def test_the_oversubscription_explanation_says_when_a_cell_was_capped():
    heat = {"workers": [1, 2], "threads": [1, 4], "usable": 2,
            "seconds": {(1, 1): 1.0, (1, 4): 1.05, (2, 1): 0.6, (2, 4): 2.0},
            "ran_with": {(1, 1): 1, (1, 4): 4, (2, 1): 1, (2, 4): 2}}
    text = joblib_runs.explain_oversubscription(heat)
    assert "2×4 ran with 2" in text and "cost little here" in text
    heat["seconds"][(1, 4)] = 2.5
    assert "took 2.5× the one-thread time" in joblib_runs.explain_oversubscription(heat)


def test_markdown_table():
    text = tables.markdown_table([{"a": 1.23456, "b": ["x", "y"]}, {"a": 2, "b": "p|q"}])
    assert text.splitlines()[0] == "| a | b |" and "1.23 | x, y" in text and "p\\|q" in text
    assert tables.markdown_table([]) == "(no rows)"
