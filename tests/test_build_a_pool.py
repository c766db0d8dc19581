"""Notebook 05's step-by-step pools, and its experiments, under fork and spawn."""

import multiprocessing

import pytest

from helpers.experiments import pools
from helpers.pool.build_a_pool import step1_queue, step2_futures, step3_errors, step4_crashes
from helpers.tasks import faults

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


@pytest.mark.parametrize("method", METHODS)
def test_step1_runs_everything_in_order(method):
    assert step1_queue.run_all(abs, [-3, -1, -2, 5], workers=2, start_method=method) == \
        [3, 1, 2, 5]


@pytest.mark.parametrize("method", METHODS)
def test_step2_futures_resolve(method):
    pool = step2_futures.FuturesPool(2, start_method=method)
    futures = [pool.submit(faults.sleep_for, s) for s in (0.2, 0.05)]
    assert [f.result(timeout=30) for f in futures] == [0.2, 0.05]
    pool.shutdown()


@pytest.mark.parametrize("method", METHODS)
def test_step3_errors_come_back_with_traceback(method):
    pool = step3_errors.ErrorsPool(2, start_method=method)
    future = pool.submit(faults.raise_error, "nope")
    with pytest.raises(ValueError, match="nope") as info:
        future.result(timeout=30)
    assert "raise_error" in str(info.value.__cause__)
    assert pool.submit(abs, -2).result(timeout=30) == 2
    pool.shutdown()


@pytest.mark.parametrize("method", METHODS)
def test_step4_a_crash_fails_only_its_task(method):
    pool = step4_crashes.CrashSafePool(2, start_method=method)
    futures = pool.run(faults.exit_or_report_pid, [None, None, 3, None, None])
    assert [f.exception() is None for f in futures] == [True, True, False, True, True]
    assert "exit code 3" in str(futures[2].exception())
    assert pool.replaced == 1
    pool.shutdown()


def test_timeline_records_every_task():
    result = pools.timeline("WorkerPool", task_seconds=0.002, tasks=30, chunksize=3)
    assert sorted(r.task_id for r in result.records) == list(range(30))
    assert result.seconds > 0 and result.chunksize == 3
    with pytest.raises(ValueError, match="pool 'Nope'"):
        pools.timeline("Nope")
    with pytest.raises(ValueError, match="chunksize"):
        pools.timeline("WorkerPool", chunksize=0)


@pytest.mark.parametrize(("pool", "fault", "tasks", "afterwards"), [
    ("WorkerPool", "kill a worker", "1 WorkerCrashed, 4 ok", "serves new tasks"),
    ("ProcessPoolExecutor", "kill a worker", "5 BrokenProcessPool", "broken"),
    ("WorkerPool", "unpicklable argument", "1 TypeError, 4 ok", "serves new tasks"),
    ("WorkerPool", "task overruns", "1 TaskTimeout, 4 ok", "serves new tasks"),
    ("ProcessPoolExecutor", "task overruns", "no result after 1 s", "serves new tasks"),
])
def test_fault_demos_report_what_happened(pool, fault, tasks, afterwards):
    row = pools.fault_demo(pool, fault)
    assert tasks in row["the_5_tasks"]
    assert row["afterwards"].startswith(afterwards)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("pool", ["WorkerPool", "ProcessPoolExecutor"])
def test_the_kill_demo_finds_the_workers_under_every_start_method(pool, method):
    """Under forkserver the workers are the fork server's children, not the kernel's."""
    row = pools.fault_demo(pool, "kill a worker", start_method=method)
    assert ("WorkerCrashed" if pool == "WorkerPool" else "BrokenProcessPool") in row["the_5_tasks"]


def test_fault_demo_refuses_unknown_faults():
    with pytest.raises(ValueError, match="fault 'fire'"):
        pools.fault_demo("WorkerPool", "fire")


def test_markdown_table():
    from helpers.view import tables

    table = tables.markdown_table([{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_tables_label_identifier_keys_and_leave_others():
    from helpers.view import tables

    table = tables.markdown_table([{"way": "thread", "gave_up_after_s": 0.2}])
    assert table.splitlines()[0] == "| way | caller gave up after (s) |"
    assert tables.label("own_seconds") == "own seconds" and tables.label("pool") == "pool"
