"""The pool benchmark runs end to end and writes a result in the course's schema.

It checks that the benchmark works and computes its targets from the figures it
measured, not how fast anything is: speed is measured by ``python -m helpers.bench pool``
and reported, never asserted in a test.
"""

import dataclasses
import json
import multiprocessing
import subprocess
import sys

import pytest

from helpers.bench import pool_suite
from helpers.core import measure
from helpers.core.measure import Measurement
from helpers.experiments import pool_overhead
from helpers.experiments.pool_overhead import LOKY, LOKY_METHOD, MemoryGrowth

ISSUE_TARGETS = {
    "tiny_vs_ProcessPoolExecutor": ("<=", 0.15),
    "tiny_vs_Pool.imap": ("<=", 0.7),
    "map_auto_vs_joblib": ("<=", 0.15),
    "coarse_speedup_vs_ProcessPoolExecutor": (">=", 0.97),
    "latency_vs_ProcessPoolExecutor": ("<=", 0.6),
    "first_result_vs_best_peer": ("<=", 1.1),
    "lazy_map_growth_mb": ("<", 50.0),
}


@pytest.mark.slow
def test_pool_benchmark_runs_and_writes_its_result(tmp_path):
    output = tmp_path / "pool.json"
    run = subprocess.run(
        [sys.executable, "-m", "helpers.bench", "pool", "--quick", "--repeats", "1",
         "--methods", "fork", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for name in ISSUE_TARGETS:
        assert f"target {name}" in run.stdout
    document, records = measure.load_results(output)
    assert document["kind"] == "pool-benchmark" and document["mode"] == "quick"
    assert document["machine"]["usable_cpus"] >= 1
    assert {r.mode for r in records} == {"quick"}
    experiments = {r.experiment for r in records}
    assert experiments == {"tiny", "parent-cpu", "latency", "coarse", "first-result",
                           "map-auto"}
    first_results = [r for r in records if r.experiment == "first-result"
                     and r.executor == "WorkerPool"]
    assert len(first_results) == pool_suite.FIRST_RESULT_STARTS  # one repeat, several starts
    assert {r.executor for r in records if r.start_method == LOKY_METHOD} == {
        LOKY, "joblib (loky)"}
    assert {(m["pool"], m["start_method"]) for m in document["memory"]} == {
        ("WorkerPool", "fork"), ("ProcessPoolExecutor", "fork")}
    summary = document["summary"]["fork"]
    assert set(summary["targets"]) == set(ISSUE_TARGETS)
    assert summary["targets"]["lazy_map_growth_mb"]["value"] >= 0
    for name in document["peers"]["not_installed"]:
        assert f"{name} not installed" in run.stdout
    json.dumps(document)  # plain data all the way down


def test_bad_arguments_are_reported():
    run = subprocess.run([sys.executable, "-m", "helpers.bench", "pool", "--methods", "teleport"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "not available here" in run.stderr


def test_the_targets_are_the_pool_issue_s():
    assert {g.name: (g.relation, g.limit) for g in pool_suite.TARGETS} == ISSUE_TARGETS


def test_forkserver_is_a_default_start_method_where_the_platform_has_it():
    methods = pool_suite.default_methods()
    assert ("forkserver" in methods) == ("forkserver" in multiprocessing.get_all_start_methods())
    assert methods == [m for m in ("fork", "forkserver", "spawn") if m in methods]


# --- the summary and the report, from made-up records ---


def _records(method="fork"):
    """One repeat of every experiment, with round numbers of seconds per task."""
    per_task = {  # experiment: {executor: seconds per task}
        "tiny": {"WorkerPool": 10, "ProcessPoolExecutor": 100, "multiprocessing.Pool": 20},
        "parent-cpu": {"WorkerPool": 8, "ProcessPoolExecutor": 90, "multiprocessing.Pool": 18},
        "latency": {"WorkerPool": 150, "ProcessPoolExecutor": 100, "multiprocessing.Pool": 120},
        "first-result": {"WorkerPool": 5, "ProcessPoolExecutor": 6, "multiprocessing.Pool": 4},
        "coarse": {"WorkerPool": 1, "ProcessPoolExecutor": 1, "multiprocessing.Pool": 2},
    }
    rows = [(e, name, method, s) for e, times in per_task.items() for name, s in times.items()]
    rows += [(e, LOKY, LOKY_METHOD, 200) for e in per_task]
    rows += [("coarse", "serial", None, 2), ("map-auto", "WorkerPool", method, 1),
             ("map-auto", "joblib (loky)", LOKY_METHOD, 10)]
    return [Measurement(experiment=e, executor=name, workers=2, workload="noop",
                        task_seconds=0.0, tasks=1, repeat=0, seconds=s, start_method=m,
                        mode="quick", machine_id="test") for e, name, m, s in rows]


def _memory(method="fork", consumed=1000):
    return [MemoryGrowth(pool="WorkerPool", start_method=method, items=1000, consumed=consumed,
                         chunksize="auto", max_pending=1000, seconds=1.0, seconds_limit=5.0,
                         baseline_bytes=10**8, growth_bytes=3 * 10**6, mode="quick"),
            MemoryGrowth(pool="ProcessPoolExecutor", start_method=method, items=1000,
                         consumed=1000, chunksize=1000, max_pending=None, seconds=1.0,
                         seconds_limit=5.0, baseline_bytes=10**8, growth_bytes=80 * 10**6,
                         mode="quick")]


def test_every_target_is_computed_from_the_same_run():
    summary = pool_suite.summarize(_records(), _memory(), ["fork"])
    values = {name: t.value for name, t in summary["fork"].targets.items()}
    assert values == pytest.approx({
        "tiny_vs_ProcessPoolExecutor": 0.1, "tiny_vs_Pool.imap": 0.5,
        "map_auto_vs_joblib": 0.1, "coarse_speedup_vs_ProcessPoolExecutor": 1.0,
        "latency_vs_ProcessPoolExecutor": 1.5, "first_result_vs_best_peer": 1.25,
        "lazy_map_growth_mb": 3.0})
    met = {name: t.met for name, t in summary["fork"].targets.items()}
    assert not met["latency_vs_ProcessPoolExecutor"] and not met["first_result_vs_best_peer"]
    assert met["tiny_vs_ProcessPoolExecutor"] and met["lazy_map_growth_mb"]
    assert summary[LOKY_METHOD].tiny_seconds_per_task == {LOKY: 200}
    assert summary[LOKY_METHOD].targets == {}


def test_the_report_shows_every_figure_and_every_verdict():
    summary = pool_suite.summarize(_records(), _memory(), ["fork"])
    document = {
        "mode": "quick", "workers": 2, "sizes": {"lazy_map_items": 1000},
        "machine": {"cpu_model": "Test CPU", "usable_cpus": 4, "python": "3.x"},
        "peers": {"not_installed": ["mpire", "pebble"]},
        "memory": [m.as_dict() for m in _memory()],
        "summary": {name: s.to_json() for name, s in summary.items()},
    }
    text = pool_suite.report(document)
    assert "mpire not installed, pebble not installed" in text
    assert "set for the 2-CPU reference machine" in text
    rows = {line.split("  ")[1]: line for line in text.splitlines() if line.startswith("  ")}
    assert rows["one task, round trip"].endswith("ProcessPool")  # WorkerPool not ahead
    assert rows["time to first result"].endswith("mp.Pool")
    assert "ProcessPoolExecutor 80.0 MB over 1,000 of 1,000 items" in text
    for name in ISSUE_TARGETS:
        assert f"target {name}" in text
    assert "(want <= 0.6): NOT met" in text and "(want < 50): met" in text


def test_one_repeat_each_leaves_nothing_to_redraw():
    summary = pool_suite.summarize(_records(), _memory(), ["fork"])
    for target in summary["fork"].targets.values():
        assert target.interval == (target.value, target.value) and not target.noise_decides


def _spread_records(worker_pool_latencies):
    """_records() with several repeats of the round trip: ProcessPoolExecutor's always
    100, WorkerPool's as given."""
    records = [r for r in _records() if not (r.experiment == "latency"
                                             and r.executor == "WorkerPool")]
    for repeat, seconds in enumerate(worker_pool_latencies):
        records.append(dataclasses.replace(
            next(r for r in _records() if r.experiment == "latency"
                 and r.executor == "ProcessPoolExecutor"), executor="WorkerPool",
            seconds=seconds, repeat=repeat))
    return records


def test_a_target_s_interval_comes_from_its_own_repeats():
    steady = pool_suite.summarize(_spread_records([50, 51, 52, 53, 54]), _memory(), ["fork"])
    target = steady["fork"].targets["latency_vs_ProcessPoolExecutor"]
    assert target.value == pytest.approx(0.52) and target.met
    low, high = target.interval
    assert 0.5 <= low <= 0.52 <= high <= 0.54 and not target.noise_decides

    noisy = pool_suite.summarize(_spread_records([40, 45, 58, 70, 80]), _memory(), ["fork"])
    target = noisy["fork"].targets["latency_vs_ProcessPoolExecutor"]
    assert target.met and target.noise_decides  # 0.58, but 0.7 is as likely a median
    assert target.interval[0] < 0.6 < target.interval[1]
    document = {
        "mode": "quick", "workers": 2, "sizes": {"lazy_map_items": 1000},
        "machine": {"cpu_model": "Test CPU", "usable_cpus": 2, "python": "3.x"},
        "peers": {"not_installed": []}, "memory": [m.as_dict() for m in _memory()],
        "summary": {name: s.to_json() for name, s in noisy.items()},
    }
    line = next(line for line in pool_suite.report(document).splitlines()
                if "target latency_vs" in line)
    assert line.endswith("on both sides of the limit") and "repeats redrawn: 0." in line


def test_loky_runs_only_under_its_own_start_method():
    with pytest.raises(ValueError, match="its own way"):
        pool_overhead.PoolUnderTest(LOKY, "fork")


def test_the_lazy_iterable_has_no_length():
    items = pool_overhead.lazy_items(3)
    assert not hasattr(items, "__len__") and list(items) == [0, 1, 2]


def test_a_lazy_map_stopped_by_its_time_limit_does_not_meet_the_target():
    summary = pool_suite.summarize(_records(), _memory(consumed=400), ["fork"])
    target = summary["fork"].targets["lazy_map_growth_mb"]
    assert target.value == pytest.approx(3.0) and not target.met
    assert "after 400 of 1,000 items" in target.incomplete


def test_round_trips_take_turns_in_blocks_and_count_every_trip(monkeypatch):
    """Each pool makes all its round trips, in blocks that alternate between the pools
    (the first pool of a block rotates), so a burst of noise falls on every pool."""
    calls: list[str] = []

    class FakePool:
        def __init__(self, name: str) -> None:
            self.name = name

        def one(self, fn, arg):
            calls.append(self.name)

    running = {name: FakePool(name) for name in ("A", "B", "C")}
    monkeypatch.setattr(pool_overhead, "LATENCY_BLOCKS", 4)
    records = pool_overhead.round_trips(running, "fork", 10, repeat=2)
    assert [r.executor for r in records] == ["A", "B", "C"]
    assert all(r.experiment == "latency" and r.tasks == 10 and r.repeat == 2 for r in records)
    assert [calls.count(name) for name in "ABC"] == [10, 10, 10]
    # Blocks of 3 trips (3, 3, 3 and 1): A B C, then B C A, then C A B, then A B C.
    assert calls[:9] == ["A"] * 3 + ["B"] * 3 + ["C"] * 3
    assert calls[9:18] == ["B"] * 3 + ["C"] * 3 + ["A"] * 3
    assert calls[18:27] == ["C"] * 3 + ["A"] * 3 + ["B"] * 3
    assert calls[27:] == ["A", "B", "C"]
