"""The course benchmark (``python -m helpers.bench``) and notebook 10's comparison.

These check that the benchmark runs, writes its schema and feeds the plots and the
diagnosis; how fast anything is stays a measurement (``data/reference/``), never an
assertion.
"""

import asyncio
import json
import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from helpers.bench import diagnosis, suite
from helpers.bench.schema import Summary
from helpers.core import measure
from helpers.view import compare


@pytest.fixture(scope="module")
def quick_result():
    """One quick run of every part, one repeat: about 15 s on two cores."""
    return suite.run(quick=True, repeats=1, progress=None)


def test_every_part_measures_what_it_says(quick_result):
    records = measure.records_of(quick_result)
    experiments = {r.experiment for r in records}
    expected = {"scaling", "task-size", "tiny", "parent-cpu", "latency", "loop-lag",
                "loop-cpu", "first-result"}
    if suite.blas_skip_reason() is None:
        expected.add("blas")
    else:
        assert "blas" in quick_result["skipped"]
    assert experiments == expected
    assert {r.mode for r in records} == {"quick"}
    scaling = {(r.workload, r.executor) for r in records if r.experiment == "scaling"}
    assert scaling == {(w, e) for w in suite.SCALING_WORKLOADS
                       for e in ("serial", *suite.SCALING_EXECUTORS)}
    methods = {r.start_method for r in records if r.experiment == "first-result"}
    assert methods == set(__import__("multiprocessing").get_all_start_methods())


def test_the_document_carries_full_machine_metadata(quick_result):
    card = quick_result["machine"]
    for key in ("cpu_model", "usable_cpus", "physical_cores", "python", "python_build",
                "free_threaded_build", "gil_enabled", "os", "libraries", "virtualisation",
                "container", "start_methods"):
        assert key in card, key
    assert card["libraries"]["numpy"] and card["libraries"]["joblib"]
    assert quick_result["kind"] == suite.KIND and quick_result["mode"] == "quick"
    assert quick_result["schema_version"] == measure.SCHEMA_VERSION
    json.dumps(quick_result)  # plain data all the way down


def test_the_summary_and_report_read_the_records(quick_result):
    summary = quick_result["summary"]
    top = str(max(quick_result["plan"]["workers"]))
    for workload in suite.SCALING_WORKLOADS:
        for executor in suite.SCALING_EXECUTORS:
            point = summary["speedup"][workload][executor][top]
            assert point["low"] <= point["median"] <= point["high"] and point["median"] > 0
    assert set(summary["task_size"]["efficiency"]) == {"WorkerPool", "ProcessPoolExecutor"}
    assert set(summary["loop_max_lag_seconds"]) == set(suite.LOOP_STRATEGIES)
    text = suite.report(quick_result)
    assert "speedup over serial, python workload" in text and "why no speedup?" in text


def test_a_part_runs_inside_a_running_event_loop():
    """Jupyter runs its own loop; the event-loop part must still work from a cell."""
    bench = suite.CourseBenchmark(quick=True, repeats=1, progress=None)

    async def from_a_cell():
        return bench.run("event-loop")

    records = asyncio.run(from_a_cell())
    assert {r.executor for r in records} == set(suite.LOOP_STRATEGIES)
    assert bench.run("event-loop") and len(bench.records) == len(records)  # replaced, not added


def test_bad_parameters_say_what_is_allowed():
    with pytest.raises(ValueError, match="unknown part 'teleport'"):
        suite.CourseBenchmark(quick=True, progress=None).run("teleport")
    with pytest.raises(ValueError, match="repeats=0 is out of range"):
        suite.Plan.make(True, repeats=0)
    with pytest.raises(ValueError, match="not available here"):
        suite.Plan.make(True, start_method="teleport")


@pytest.mark.parametrize("usable", [1, 2, 16, 64])
def test_the_plan_scales_to_the_machine(usable):
    for quick in (True, False):
        plan = suite.Plan.make(quick, usable=usable)
        assert plan.workers[0] == 1 and plan.workers[-1] == usable
        assert len(plan.workers) <= (4 if quick else 8)
        tasks, task_seconds = suite.scaling_job(plan)
        assert tasks % usable == 0 and tasks >= 2 * usable
        assert 0.002 <= task_seconds <= plan.scaling_task_seconds


def test_command_line_runs_chosen_parts_and_writes_json(tmp_path):
    output = tmp_path / "course.json"
    run = subprocess.run(
        [sys.executable, "-m", "helpers.bench", "--quick", "--repeats", "1",
         "--parts", "overhead,start-methods", "--output", str(output)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "overhead: done" in run.stderr  # progress goes to stderr
    document, records = measure.load_results(output)
    assert {r.experiment for r in records} == {"tiny", "parent-cpu", "latency", "first-result"}
    assert document["kind"] == suite.KIND


@pytest.mark.parametrize("arguments, message", [
    (["--parts", "teleport"], "unknown part(s) teleport"),
    (["--methods", "fork,spawn"], "uses one start method"),
    (["--repeats", "0"], "--repeats must be 1 to 50"),
])
def test_command_line_rejects_bad_arguments(arguments, message):
    run = subprocess.run([sys.executable, "-m", "helpers.bench", *arguments],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and message in run.stderr


# --- notebook 10's comparison ---


def test_references_are_compared_like_with_like(quick_result, tmp_path):
    full = {**quick_result, "mode": "full"}
    measure.save_results(tmp_path / "course-full.json", full)
    references, note = compare.comparable(quick_result, tmp_path)
    assert references == [] and "none in quick mode" in note
    measure.save_results(tmp_path / "course-quick.json", quick_result)
    measure.save_results(tmp_path / "pool.json", {**quick_result, "kind": "pool-benchmark"})
    references, note = compare.comparable(quick_result, tmp_path)
    assert [r["file"] for r in references] == ["course-quick.json"]
    assert "like yours" in note
    assert compare.comparable(quick_result, tmp_path / "empty")[1].startswith("No reference")


def test_the_summary_is_recomputed_from_the_records(quick_result):
    stripped = {**quick_result, "summary": {}}
    assert compare.with_summary(stripped)["summary"] == quick_result["summary"]


def test_a_fresh_summary_round_trips_through_its_dataclasses(quick_result):
    """What a run writes is exactly what ``Summary.to_json()`` gives (see test_bench_schema)."""
    summary = Summary.from_json(quick_result["summary"])
    assert summary.to_json() == quick_result["summary"]
    assert summary == suite.summarize(measure.records_of(quick_result), quick_result["machine"])


def test_the_comparison_plots_draw_yours_and_the_references(quick_result):
    references = [compare.with_summary(quick_result)]
    for plot in (compare.speedup_comparison_plot, compare.task_size_plot,
                 compare.overhead_comparison_plot):
        figure = plot(quick_result, references)
        assert isinstance(figure, Figure)
        lines = sum(len(ax.lines) + len(ax.patches) for ax in figure.axes)
        assert lines > 0
    alone = compare.speedup_comparison_plot(quick_result)
    with_refs = compare.speedup_comparison_plot(quick_result, references)
    assert len(with_refs.axes[0].lines) > len(alone.axes[0].lines)


def test_the_summary_page_quotes_the_numbers_and_the_diagnosis(quick_result, tmp_path):
    page = compare.summary_page(quick_result)
    best = quick_result["summary"]["speedup"]["python"]["WorkerPool"]
    top = max(best, key=int)
    assert f"{best[top]['median']:.2f}×" in page
    assert "Why no speedup?" in page and "Decision guide" in page
    findings = diagnosis.why_no_speedup(quick_result)
    if findings:
        assert findings[0].title in page
    written = compare.save(quick_result, tmp_path / "mine")
    assert [p.name for p in written] == ["benchmark.json", "summary.md"]
    measure.load_results(written[0])


def test_reference_files_of_this_benchmark_feed_the_notebook():
    for document in compare.load_references():
        assert document["summary"]["speedup"], document["file"]
        diagnosis.why_no_speedup(document)  # no KeyError on a real reference
