"""Notebook 01's experiments, run both ways: awaited in a loop, and from a script."""

import asyncio

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
    """Side by side in one run: the relation, not absolute times."""
    inline, offloaded = asyncio.run(eventloop.compare_strategies(
        ("inline", "WorkerPool"), cpu_tasks=2, cpu_task_seconds=0.2, quiet_seconds=0.1))
    assert inline.max_lag >= 0.15, "the heartbeat cannot run while inline CPU work runs"
    assert offloaded.max_lag < inline.max_lag / 3
    assert offloaded.requests_per_second() > 5 * max(inline.requests_per_second(), 1)


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
