"""The "why no speedup?" diagnosis, on synthetic results: one cause at a time, and a clean one.

Each synthetic result starts from a healthy 8-CPU free-threaded machine on which
everything scales, and breaks exactly one thing. The summary is built with the
benchmark's own dataclasses (``helpers.bench.schema``), so it cannot drift from the
shape a real run writes; the diagnosis reads the JSON document, as it would from a file.
"""

import copy
import dataclasses
import json

import pytest

from helpers.bench import diagnosis
from helpers.bench.schema import Blas, SpeedupPoint, Summary, TaskSizeTable
from helpers.core import paths


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
        "conditions": {part: quiet_conditions() for part in ("scaling", "task-size")},
        "records": [{"experiment": "scaling", "executor": "WorkerPool", "workers": p,
                     "tasks": 64, "workload": "python"} for p in (1, 8)],
    }


def quiet_conditions(**changes):
    """A part that ran on a quiet machine: steady clock, no steal, nobody else, no quota."""
    quiet = {"wall_seconds": 10.0, "clock_mhz": [3000.0, 2990.0, 3000.0],
             "clock_max_mhz": 3000.0, "steal_share": 0.0, "others_cpus": 0.05,
             "throttled_periods": 0, "throttled_seconds": 0.0, "load_average": 8.0}
    return {**quiet, **changes}


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


# --- the hardware and its neighbours ---


def test_usable_cpus_that_are_hyper_threads_of_one_core():
    summary = clean_summary()
    summary.speedup["python"]["WorkerPool"][8] = point(5.1)
    result = clean_result(summary)
    result["machine"].update(threads_per_core=2, usable_share_cores=True)
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "smt")
    assert "2 logical CPUs per core" in finding.evidence and "5.10×" in finding.evidence


def vm_with_two_vcpus(two_workers):
    summary = dataclasses.replace(clean_summary(), usable_cpus=2)
    summary.speedup["python"]["WorkerPool"] = {1: point(0.98), 2: point(two_workers)}
    result = clean_result(summary)
    result["machine"].update(usable_cpus=2, logical_cpus=2, affinity_cpus=2,
                             virtualisation="KVM", threads_per_core=1)
    result["records"] = [{"experiment": "scaling", "executor": "WorkerPool", "workers": p,
                          "tasks": 16} for p in (1, 2)]
    return result


def test_a_vm_whose_two_vcpus_scale_like_one_core_is_suspected_of_smt():
    """The OS inside a VM says one thread per core; the coarse job's 1.4× is the evidence."""
    finding = next(f for f in diagnosis.why_no_speedup(vm_with_two_vcpus(1.4))
                   if f.cause == "smt-suspected")
    assert "1.40×" in finding.evidence and "KVM" in finding.evidence
    assert "smt-suspected" not in causes(vm_with_two_vcpus(1.9))


def test_steal_is_named_instead_of_smt_when_the_host_took_the_time():
    result = vm_with_two_vcpus(1.4)
    result["conditions"] = {"scaling": quiet_conditions(steal_share=0.12)}
    found = causes(result)
    assert "steal" in found and "smt-suspected" not in found
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "steal")
    assert "12%" in finding.evidence and "scaling part" in finding.evidence


def test_a_clock_that_drops_under_load():
    result = clean_result()
    result["conditions"]["scaling"] = quiet_conditions(clock_mhz=[4200.0, 3600.0, 3150.0])
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "clock-drop")
    assert "3150 to 4200 MHz (25% lower" in finding.evidence


def test_other_programs_using_the_cpus():
    result = clean_result()
    result["conditions"]["task-size"] = quiet_conditions(others_cpus=3.0)
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "other-programs")
    assert "3.0 of the 8 usable CPUs" in finding.evidence and "task-size" in finding.evidence


def test_cgroup_throttling():
    result = clean_result()
    result["machine"]["cgroup_quota_cpus"] = 8.0
    result["conditions"]["scaling"] = quiet_conditions(throttled_periods=40,
                                                       throttled_seconds=1.5)
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "throttled")
    assert "40 scheduling periods, 1.50 s" in finding.evidence and "15%" in finding.evidence


def test_too_few_tasks_per_worker():
    """The 16-CPU reference's scaling part gave each worker 2 tasks."""
    result = clean_result()
    result["records"] = [{"experiment": "scaling", "executor": "WorkerPool", "workers": p,
                          "tasks": 16} for p in (1, 8)]
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "imbalance")
    assert "each of 8 workers only 2 task(s)" in finding.evidence


def with_task_timings(result, slowest, idle, median=0.011, seconds=0.2, straggling=3):
    """Three repeats of WorkerPool on 1 and 8 workers, their tasks timed in the workers;
    the first ``straggling`` repeats on 8 workers had a task of ``slowest`` seconds."""
    def run(workers, repeat):
        late = workers == 8 and repeat < straggling
        return {"experiment": "scaling", "executor": "WorkerPool", "workers": workers,
                "workload": "python", "tasks": 64, "repeat": repeat, "seconds": seconds,
                "task_seconds_median": median,
                "task_seconds_max": slowest if late else median * 1.1,
                "idle_share": idle if late else 0.03}
    serial = [{"experiment": "scaling", "executor": "serial", "workers": 1, "tasks": 64,
               "workload": "python", "repeat": r, "seconds": 1.4, "task_seconds_median": None,
               "task_seconds_max": None, "idle_share": None} for r in range(3)]
    result["records"] = serial + [run(p, r) for p in (1, 8) for r in range(3)]
    return result


def test_a_straggler_that_kept_the_workers_waiting():
    result = with_task_timings(clean_result(), slowest=0.041, idle=0.23)
    finding = next(f for f in diagnosis.why_no_speedup(result) if f.cause == "stragglers")
    assert "WorkerPool on 8 workers, python workload" in finding.evidence
    assert "the slowest task took 41 ms against a median of 11 ms" in finding.evidence
    assert "idle 23% of their time" in finding.evidence
    assert "chunksize=1" in finding.fix and "other load" in finding.fix
    assert finding.impact == pytest.approx(0.23)


@pytest.mark.parametrize("slowest, idle, median, straggling", [
    (0.012, 0.03, 0.011, 3),  # even tasks
    (0.041, 0.05, 0.011, 3),  # a slow task, but hardly anyone waited for it
    (0.005, 0.40, 0.002, 3),  # idle from per-task overhead: the slow task's 3 ms are no tail
    (0.041, 0.23, 0.011, 1),  # one repeat out of three: noise, not a straggler
])
def test_even_tasks_or_a_cheap_tail_are_not_stragglers(slowest, idle, median, straggling):
    result = with_task_timings(clean_result(), slowest, idle, median, straggling=straggling)
    assert "stragglers" not in causes(result)


def test_an_older_result_without_task_timings_gets_no_straggler_finding():
    result = clean_result()  # its scaling records predate the task timings
    assert "stragglers" not in causes(result)
    result["records"][1].update(task_seconds_max=0.5, seconds=1.0)  # half the figures only
    assert "stragglers" not in causes(result)


def test_an_older_result_without_conditions_gets_no_hardware_finding():
    result = clean_result()
    del result["conditions"]
    assert diagnosis.why_no_speedup(result) == []


def test_the_reference_results_are_diagnosed_without_error():
    """Real files, recorded before and after the hardware causes existed."""
    for path in sorted((paths.REPO_ROOT / "data" / "reference").glob("course-*.json")):
        findings = diagnosis.why_no_speedup(json.loads(path.read_text()))
        assert {f.cause for f in findings} <= set(diagnosis.CAUSE_IDS)


def test_the_conditions_table_shows_each_part_and_what_is_unknown():
    result = clean_result()
    result["conditions"]["scaling"] = quiet_conditions(steal_share=0.031, others_cpus=None)
    text = diagnosis.conditions_markdown(result)
    assert "| scaling | 2990–3000 | 3.1% | unknown | 0.00 s |" in text
    del result["conditions"]
    assert "predates them" in diagnosis.conditions_markdown(result)
