"""Notebook 01's experiments, run both ways: awaited in a loop, and from a script."""

import asyncio
import statistics
import sys

import pytest

from helpers.experiments import eventloop


def test_many_sleeps_overlap():
    seconds = asyncio.run(eventloop.many_sleeps(10_000, 0.05))
    assert seconds < 5, "10,000 sleeps of 0.05 s should overlap, not add up to 500 s"


def test_loopback_server_answers_every_request():
    seconds, answered = asyncio.run(eventloop.serve_requests(requests=150, concurrency=50))
    assert answered == 150 and seconds > 0


@pytest.mark.parametrize("strategy", eventloop.STRATEGIES)
def test_each_strategy_runs_the_cpu_work_and_records_lag(strategy):
    run = asyncio.run(eventloop.lag_experiment(strategy, cpu_tasks=2, cpu_task_seconds=0.1,
                                               quiet_seconds=0.1))
    assert run.strategy == strategy
    assert 0 < run.cpu_start < run.cpu_end
    assert len(run.lag) > 5 and run.answered
    # Every answer is counted once: before, during or after the CPU phase (no rate is
    # asserted: on a loaded machine the quiet phase may see no answer at all).
    assert run.answered == sorted(run.answered)


def test_inline_work_blocks_the_loop_and_a_process_pool_does_not():
    """Side by side in one run: what can and cannot happen while the CPU work runs, not
    rates (a loaded machine slows both; only the blocked loop stops completely)."""
    inline, offloaded = asyncio.run(eventloop.compare_strategies(
        ("inline", "WorkerPool"), cpu_tasks=2, cpu_task_seconds=0.2, quiet_seconds=0.1))
    # inline: the heartbeat sleeps through the whole CPU phase, and nothing is answered
    # while the first task runs (10 % to 40 % of the phase: clear of its edges)
    assert inline.max_lag >= 0.5 * inline.cpu_seconds, "the loop ran during inline work"
    first_task = (inline.cpu_start + 0.1 * inline.cpu_seconds,
                  inline.cpu_start + 0.4 * inline.cpu_seconds)
    assert not [t for t in inline.answered if first_task[0] <= t <= first_task[1]]
    # offloaded: the loop keeps beating and answering while the workers compute
    beats = [lag for t, lag in offloaded.lag if offloaded.cpu_start <= t <= offloaded.cpu_end]
    assert beats and statistics.median(beats) < inline.max_lag / 10
    assert [t for t in offloaded.answered if offloaded.cpu_start <= t <= offloaded.cpu_end]


def test_the_script_entry_point_uses_asyncio_run():
    run = eventloop.run_lag_experiment("chunks", cpu_tasks=1, cpu_task_seconds=0.05,
                                       quiet_seconds=0.05)
    assert run.strategy == "chunks"


def test_the_script_entry_point_refuses_inside_a_running_loop():
    async def inside():
        with pytest.raises(RuntimeError, match="await lag_experiment"):
            eventloop.run_lag_experiment("inline")

    asyncio.run(inside())


@pytest.mark.parametrize(("options", "message"), [
    ({"strategy": "fork-bomb"}, "strategy 'fork-bomb'"),
    ({"cpu_task_seconds": 60}, "out of range"),
    ({"cpu_tasks": 0}, "cpu_tasks must be"),
])
def test_bad_parameters_say_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        asyncio.run(eventloop.lag_experiment(**options))


def test_bad_sizes_for_the_other_experiments():
    with pytest.raises(ValueError, match="count"):
        asyncio.run(eventloop.many_sleeps(0))
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(eventloop.serve_requests(10, concurrency=5000))


# --- the explanation, as on every kernel ---


def fake_run(strategy, cpu_seconds, gil_enabled=True, usable_cpus=2, lag=0.004):
    return eventloop.LoopRun(strategy, 2, 0.3, 0.2, 0.2 + cpu_seconds, lag=[(0.3, lag)],
                             gil_enabled=gil_enabled, usable_cpus=usable_cpus)


def bullets(runs):
    text = eventloop.explain_strategies(runs)
    return {line.split("**")[1]: line for line in text.splitlines() if line.startswith("- ")}


def test_with_the_gil_on_to_thread_is_explained_by_the_gil_and_processes_by_cpus():
    said = bullets([fake_run("inline", 0.6, lag=0.3), fake_run("to_thread", 0.62, lag=0.02),
                    fake_run("WorkerPool", 0.32)])
    assert "GIL on" in said["to_thread"] and "convoy" in said["to_thread"]
    assert "cannot finish sooner" in said["to_thread"]
    assert "side by side" in said["WorkerPool"] and "0.53× inline" in said["WorkerPool"]
    assert "worst lag 300 ms" in said["inline"]


def test_with_the_gil_off_to_thread_runs_in_parallel():
    """A free-threaded kernel (the run recorded the GIL off) gets no GIL sentence."""
    said = bullets([fake_run("inline", 0.6, gil_enabled=False),
                    fake_run("to_thread", 0.31, gil_enabled=False)])
    assert "GIL **off**" in said["to_thread"] and "convoy" not in said["to_thread"]
    assert "side by side" in said["to_thread"]


@pytest.mark.parametrize(("cpus", "seconds", "expected"), [
    (1, 0.6, "nothing to run side by side"),
    (2, 0.59, "did not finish much sooner"),
    (2, 0.3, "ran side by side"),
])
def test_the_offload_sentence_follows_what_the_run_measured(cpus, seconds, expected):
    said = bullets([fake_run("inline", 0.6, usable_cpus=cpus),
                    fake_run("ProcessPoolExecutor", seconds, usable_cpus=cpus)])
    assert expected in said["ProcessPoolExecutor"]


def test_the_switch_interval_is_set_for_the_run_and_put_back():
    before = sys.getswitchinterval()
    run = eventloop.run_lag_experiment("to_thread", cpu_tasks=1, cpu_task_seconds=0.05,
                                       quiet_seconds=0.05, switch_interval_ms=1)
    assert run.switch_interval == pytest.approx(0.001) and sys.getswitchinterval() == before
    with pytest.raises(ValueError, match="0.1 to 100 ms"):
        eventloop.run_lag_experiment("to_thread", switch_interval_ms=500)
