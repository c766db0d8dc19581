"""The "why no speedup?" diagnosis, on synthetic results: one cause at a time, and a clean one.

Each synthetic result starts from a healthy 8-CPU free-threaded machine on which
everything scales, and breaks exactly one thing. The summary is built with the
benchmark's own dataclasses (``helpers.bench.schema``), so it cannot drift from the
shape a real run writes; the diagnosis reads the JSON document, as it would from a file.
"""

import copy
import dataclasses

import pytest

from helpers.bench import diagnosis
from helpers.bench.schema import Blas, SpeedupPoint, Summary, TaskSizeTable


def point(median, low=None, high=None):
    return SpeedupPoint(median=median, low=low if low is not None else median * 0.98,
                        high=high if high is not None else median * 1.02)


def clean_summary():
    return Summary(
        usable_cpus=8, start_method="fork",
        speedup={
            "python": {"WorkerPool": {1: point(0.98), 8: point(7.6)},
                       "threads": {1: point(1.0), 8: point(7.2)}},
            "sha256": {"threads": {1: point(1.0), 8: point(7.7)}},
        },
        task_size=TaskSizeTable(workers=8, efficiency={
            "ProcessPoolExecutor": {0.1: 0.85, 1.0: 0.95, 10.0: 0.98},
            "WorkerPool": {0.1: 0.9, 1.0: 0.96, 10.0: 0.99}}),
        overhead_seconds_per_task={"ProcessPoolExecutor": 60e-6, "WorkerPool": 8e-6},
        loop_max_lag_seconds={"inline": 0.3, "WorkerPool": 0.002},
        first_result_seconds={"fork": {"WorkerPool": 0.005}, "spawn": {"WorkerPool": 0.04}},
        blas=blas(0.51, 1.02),
    )


def blas(oversubscribed_seconds, slowdown):
    return Blas(seconds={"1 process, BLAS threads": 1.0,
                         "processes, BLAS threads": oversubscribed_seconds,
                         "processes, 1 BLAS thread": 0.5},
                blas_threads=8, oversubscription_slowdown=slowdown)


def clean_result(summary=None):
    """A result document (plain JSON data) around ``summary`` (the clean one by default)."""
    return {
        "mode": "full",
        "machine": {"cpu_model": "test CPU", "logical_cpus": 8, "usable_cpus": 8,
                    "affinity_cpus": 8, "cgroup_quota_cpus": None, "gil_enabled": False,
                    "free_threaded_build": True, "start_method": "fork", "python": "3.14.0"},
        "summary": (summary or clean_summary()).to_json(),
    }


def causes(result):
    return [f.cause for f in diagnosis.why_no_speedup(result)]


def test_a_clean_result_raises_no_finding():
    assert diagnosis.why_no_speedup(clean_result()) == []
    assert "No cause found" in diagnosis.diagnosis_markdown([])


def test_one_usable_cpu_ranks_first():
    summary = clean_summary()
    summary.speedup["python"]["WorkerPool"] = {1: point(0.97)}
    result = clean_result(summary)
    result["machine"].update(usable_cpus=1, cgroup_quota_cpus=1.0)
    findings = diagnosis.why_no_speedup(result)
    assert findings[0].cause == "one-cpu"
    assert "os.cpu_count() says 8" in findings[0].evidence
    assert "the container quota is 1 CPU:" in findings[0].evidence
    assert "0.97×" in findings[0].evidence


def test_a_cgroup_quota_below_the_cpu_count():
    result = clean_result()
    result["machine"].update(logical_cpus=16, usable_cpus=4, cgroup_quota_cpus=4.0,
                             affinity_cpus=16)
    finding = diagnosis.why_no_speedup(result)[0]
    assert finding.cause == "cpu-limit"
    assert "os.cpu_count() says 16" in finding.evidence
    assert "a cgroup CPU quota of 4 CPUs" in finding.evidence and "4.0×" in finding.evidence
    assert "usable_cpus" in finding.fix


def test_an_affinity_mask_is_named_too():
    result = clean_result()
    result["machine"].update(logical_cpus=8, usable_cpus=2, affinity_cpus=2)
    finding = diagnosis.why_no_speedup(result)[0]
    assert finding.cause == "cpu-limit" and "an affinity mask of 2 CPUs" in finding.evidence


def test_gil_bound_work_on_threads():
    summary = clean_summary()
    summary.speedup["python"]["threads"][8] = point(1.05)
    summary.speedup["sha256"]["threads"][8] = point(6.9)
    result = clean_result(summary)
    result["machine"].update(gil_enabled=True, free_threaded_build=False)
    findings = diagnosis.why_no_speedup(result)
    assert causes(result) == ["gil-threads"]
    assert "1.05×" in findings[0].evidence and "7.60×" in findings[0].evidence
    assert "6.90×" in findings[0].evidence  # the GIL-releasing contrast is quoted
    assert findings[0].impact == pytest.approx(1 - 1.05 / 7.6)


def test_threads_that_scale_are_not_blamed_on_the_gil():
    result = clean_result()
    result["machine"]["gil_enabled"] = True  # e.g. the GIL re-enabled by an extension
    assert "gil-threads" not in causes(result)


def test_tasks_too_small_for_their_overhead():
    summary = clean_summary()
    summary.task_size.efficiency["ProcessPoolExecutor"] = {0.1: 0.2, 1.0: 0.7, 10.0: 0.97}
    result = clean_result(summary)
    finding = diagnosis.why_no_speedup(result)[0]
    assert finding.cause == "small-tasks"
    assert "20% efficiency with 0.1 ms" in finding.evidence and "60 µs" in finding.evidence
    assert "WorkerPool, which batches small tasks, reaches 90%" in finding.evidence
    assert "tasks of 10 ms or more" in finding.fix


def test_blas_oversubscription():
    result = clean_result(dataclasses.replace(clean_summary(), blas=blas(0.8, 1.6)))
    finding = diagnosis.why_no_speedup(result)[0]
    assert finding.cause == "blas-oversubscription"
    assert "0.80 s" in finding.evidence and "1.60×" in finding.evidence
    assert "threadpool_limits" in finding.fix


@pytest.mark.parametrize("spawn_seconds, expected", [(0.4, True), (0.05, False)])
def test_a_spawn_start_method_paying_for_start_up(spawn_seconds, expected):
    summary = dataclasses.replace(clean_summary(), start_method="spawn")
    summary.first_result_seconds["spawn"]["WorkerPool"] = spawn_seconds
    result = clean_result(summary)
    found = "slow-start" in causes(result)
    assert found is expected
    if expected:
        finding = diagnosis.why_no_speedup(result)[0]
        assert "400 ms" in finding.evidence and "fork: 5 ms" in finding.evidence


def test_fork_itself_is_never_blamed_for_start_up():
    summary = clean_summary()
    summary.first_result_seconds["fork"]["WorkerPool"] = 0.5
    result = clean_result(summary)
    assert "slow-start" not in causes(result)


def test_noisy_measurements_are_reported():
    summary = clean_summary()
    summary.speedup["python"]["WorkerPool"][8] = point(6.0, 3.0, 7.5)
    result = clean_result(summary)
    finding = diagnosis.why_no_speedup(result)[0]
    assert finding.cause == "noisy" and "75%" in finding.evidence


def test_findings_are_ranked_by_impact_and_every_cause_has_an_id():
    summary = dataclasses.replace(clean_summary(), blas=blas(0.51, 1.3))
    summary.speedup["python"]["threads"][8] = point(1.0)
    result = clean_result(summary)
    result["machine"].update(gil_enabled=True, logical_cpus=32, usable_cpus=8,
                             cgroup_quota_cpus=8.0)
    findings = diagnosis.why_no_speedup(result)
    assert [f.cause for f in findings] == ["gil-threads", "cpu-limit", "blas-oversubscription"]
    assert [f.impact for f in findings] == sorted((f.impact for f in findings), reverse=True)
    assert {f.cause for f in findings} <= set(diagnosis.CAUSE_IDS)
    text = diagnosis.diagnosis_markdown(findings)
    assert text.startswith("1. **Pure-Python work on threads") and "\n3. **" in text


def test_a_partial_result_is_diagnosed_with_what_it_has():
    result = copy.deepcopy(clean_result())
    result["summary"] = {"speedup": {}}  # only some parts were run
    assert diagnosis.why_no_speedup(result) == []
    assert diagnosis.why_no_speedup({}) == []
