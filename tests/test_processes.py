"""Notebook 03's experiments: start methods, pitfalls, task costs (behaviour, not speed)."""

import multiprocessing
import sys

import pytest

from helpers.core import workloads
from helpers.experiments import processes
from helpers.tasks import pitfalls

METHODS = multiprocessing.get_all_start_methods()


def test_start_method_costs_measure_every_method():
    rows = processes.start_method_costs(repeats=1)
    assert [r["method"] for r in rows] == METHODS
    for r in rows:
        assert r["low_ms"] <= r["first_result_ms"] <= r["high_ms"] and r["uss_mib"] > 0


def test_a_function_from_main_fails_under_spawn_and_the_error_is_caught(monkeypatch):
    # As in a notebook: the function lives in this process's __main__, which a spawned
    # worker does not have (its __main__ is pytest's, re-imported).
    def square(x):
        return x * x

    square.__module__, square.__qualname__ = "__main__", "course_square"
    monkeypatch.setattr(sys.modules["__main__"], "course_square", square, raising=False)
    text = processes.in_a_pool(square, "spawn", 3, timeout=60)
    assert "BrokenProcessPool" in text or "AttributeError" in text or "PicklingError" in text
    assert "not to this notebook" not in text  # Jupyter on Linux and macOS does show it
    assert processes.in_a_pool(workloads.noop, "spawn", 3) == "result: 3"


def test_every_start_method_finds_a_module_function_and_the_default_is_marked():
    outcomes = processes.notebook_function_outcomes(workloads.noop, 5)
    assert [o.method for o in outcomes] == METHODS
    assert all(o.worked and o.text == "result: 5" and o.error == "" for o in outcomes)
    assert [o.method for o in outcomes if o.default] == [multiprocessing.get_start_method()]
    text = processes.explain_notebook_function(outcomes, "noop")
    assert "so the task ran" in text and "wrote its own traceback" not in text
    # ProcessPoolExecutor() without mp_context: multiprocessing's default
    assert processes.in_a_pool(workloads.noop, None, 5) == "result: 5"


BROKEN = ("BrokenProcessPool: A process in the process pool was terminated abruptly while the "
          "future was running or pending. (the worker died before it sent anything back; it "
          "wrote its own traceback to its stderr)")


def outcomes_on(default, methods=("fork", "spawn", "forkserver")):
    """What a notebook's function does on a kernel whose default start method is ``default``."""
    return [processes.PoolOutcome(m, m == default, "result: 49" if m == "fork" else BROKEN)
            for m in methods]


@pytest.mark.parametrize(("kernel", "outcomes", "default_words"), [
    ("Linux, Python 3.13", outcomes_on("fork"), ("here **fork**", "so here it works")),
    ("Linux, Python 3.14", outcomes_on("forkserver"), ("here **forkserver**", "it fails")),
    ("macOS", outcomes_on("spawn"), ("here **spawn**", "so here it fails")),
    ("Windows", outcomes_on("spawn", ("spawn",)), ("here **spawn**", "so here it fails")),
])
def test_the_notebook_function_explanation_matches_every_kernel(kernel, outcomes, default_words):
    text = processes.explain_notebook_function(outcomes)
    assert all(words in text for words in default_words), kernel
    assert "on 3.14 Linux, a notebook function in a `ProcessPoolExecutor()` fails by default" \
        in text
    for outcome in outcomes:
        verdict = "so the task ran" if outcome.worked else "the parent sees only"
        line = next(x for x in text.splitlines() if x.startswith(f"- **{outcome.method}**"))
        assert verdict in line, (kernel, outcome.method)
    assert "wrote its own traceback" in text  # and where it went: true with or without Jupyter
    assert "not to this notebook" not in text and "Windows it reaches only that terminal" in text
    # on a GIL-off kernel nothing changes: the explanation reads only the outcomes
    assert "GIL" not in text


def test_the_main_guard_is_what_makes_spawn_scripts_work(tmp_path):
    unguarded, guarded = processes.guard_demo(tmp_path)
    assert unguarded.returncode != 0 and "BrokenProcessPool" in unguarded.output
    assert guarded.returncode == 0 and "[0, 1, 2, 3]" in guarded.output


@pytest.mark.skipif("fork" not in METHODS, reason="this OS has no fork()")
def test_numpy_repeats_after_fork_and_seeded_tasks_are_reproducible():
    forked = processes.random_draws("fork")
    assert processes.repeated_numbers(forked["numpy global"]) >= 1
    assert processes.repeated_numbers(forked["random module"]) == 0
    spawned = processes.random_draws("spawn")
    seeded = [n for _, n in forked["seeded per task"]]
    assert seeded == [n for _, n in spawned["seeded per task"]] and len(set(seeded)) == 4


def test_repeated_numbers_counts_only_other_workers_draws():
    assert processes.repeated_numbers([(1, 5), (2, 5), (1, 7), (2, 7)]) == 2
    assert processes.repeated_numbers([(1, 5), (1, 5)]) == 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_logs_come_home_through_a_queue(method):
    lines = processes.queue_logging(method, tasks=4)
    assert len(lines) == 4 and all("squaring" in line and "pid" in line for line in lines)


def test_the_worker_traceback_names_the_failing_line():
    here, there = processes.remote_traceback("spawn")
    assert here.startswith("ValueError")
    assert "pitfalls.py" in there and "_split" in there


def test_pickling_costs_and_break_even_shapes():
    rows = processes.pickling_costs(sizes=[1024, 2**20], repeats=1)
    assert [r["bytes"] for r in rows] == [1024, 2**20] and all(r["round_trip_s"] > 0 for r in rows)
    rows = processes.break_even(task_ms=(0.1, 2.0), chunksizes=(1, 16), workers=2,
                                          job_seconds=0.05, repeats=1)
    assert {(r["task_ms"], r["chunksize"]) for r in rows} == {(0.1, 1), (0.1, 16), (2.0, 1),
                                                              (2.0, 16)}
    assert all(r["low"] <= r["speedup"] <= r["high"] for r in rows)


def test_chunk_run_keeps_a_timeline_and_rejects_bad_values():
    run = processes.chunk_run(task_ms=1, chunksize=4, workers=2, job_seconds=0.05)
    assert run.records and run.speedup > 0 and run.tasks >= 4
    with pytest.raises(ValueError, match="chunksize must be"):
        processes.chunk_run(chunksize=0)


def test_pitfall_tasks_are_plain_functions():
    assert pitfalls.parse_record("a=1; b = 2") == {"a": "1", "b": "2"}
    assert pitfalls.echo_size(b"abc") == 3
