"""The course benchmark (``python -m helpers.bench``) and notebook 10's comparison.

These check that the benchmark runs, writes its schema and feeds the plots and the
diagnosis; how fast anything is stays a measurement (``data/reference/``), never an
assertion.
"""

import asyncio
import dataclasses
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
                "container", "start_methods", "threads_per_core", "usable_share_cores",
                "hybrid_cores", "clock_mhz", "clock_max_mhz"):
        assert key in card, key
    assert card["libraries"]["numpy"] and card["libraries"]["joblib"]
    # the conditions every part ran in: clock samples, steal, other programs, throttling
    ran = set(quick_result["parts_seconds"])
    assert set(quick_result["conditions"]) == ran
    for part, conditions in quick_result["conditions"].items():
        assert conditions["wall_seconds"] > 0, part
        assert set(conditions) >= {"clock_mhz", "steal_share", "others_cpus",
                                   "throttled_seconds"}
    assert quick_result["plan"]["min_tasks_per_worker"] >= 4
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


def test_scaling_runs_record_their_tasks_timed_inside_the_workers(quick_result):
    """The stragglers' evidence: median and slowest task, and the workers' idle share."""
    scaling = [r for r in quick_result["records"] if r["experiment"] == "scaling"]
    for r in scaling:
        if r["executor"] == "serial":
            assert r["task_seconds_median"] is None and r["idle_share"] is None
            continue
        assert 0 < r["task_seconds_median"] <= r["task_seconds_max"] <= r["seconds"], r
        assert 0 <= r["idle_share"] < 1, r
    timed = [r for r in scaling if r["executor"] == "WorkerPool" and r["workload"] == "python"]
    assert timed and all(r["task_seconds_median"] > r["task_seconds"] / 4 for r in timed)


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
        assert tasks % usable == 0 and tasks >= plan.min_tasks_per_worker * usable
        assert plan.min_tasks_per_worker >= 4  # no load imbalance from a last, lonely round
        assert 0.002 <= task_seconds <= plan.scaling_task_seconds


def test_references_from_an_older_plan_are_marked_not_comparable():
    plan = suite.Plan.make(True, usable=2)
    assert suite.plan_comparable({"plan": dataclasses.asdict(plan)}) is None
    old = {"plan": {k: v for k, v in dataclasses.asdict(plan).items() if k != "plan_version"}}
    assert "plan version 1" in suite.plan_comparable(old)


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


# --- sentences about the reference machines: computed from data/reference, never typed ---


def raw_scaling(file, executor, workload="python"):
    """(repeat, workers, seconds) of one executor's scaling runs, read straight from the JSON."""
    records = json.loads((compare.REFERENCE_DIR / file).read_text())["records"]
    return [(r["repeat"], r["workers"], r["seconds"]) for r in records
            if r["experiment"] == "scaling" and r["workload"] == workload
            and r["executor"] == executor]


@pytest.mark.parametrize("document", compare.load_references(), ids=lambda d: d["file"])
def test_a_reference_sweep_is_read_from_its_own_records(document):
    found = compare.reference_scaling(document, baseline="serial")
    serial = [s for _, _, s in raw_scaling(document["file"], "serial")]
    assert (found.baseline_seconds.low, found.baseline_seconds.high) == (min(serial), max(serial))
    summary = Summary.from_json(document["summary"])
    medians = summary.speedup["python"]["ProcessPoolExecutor"]
    assert {p: s.median for p, s in found.speedups.items()} == pytest.approx(
        {p: s.median for p, s in medians.items()})
    assert found.karp_flatt() == pytest.approx(
        {p: (1 / s.median - 1 / p) / (1 - 1 / p) for p, s in medians.items() if p > 1})
    shortfall = 1 - medians[found.workers].median / found.workers
    assert found.noisy == (found.baseline_spread > shortfall)
    one = compare.reference_scaling(document, baseline="one worker")
    ones = [s for _, p, s in raw_scaling(document["file"], "ProcessPoolExecutor") if p == 1]
    assert one.baseline_seconds.median == pytest.approx(sorted(ones)[len(ones) // 2])
    assert one.speedups[1].median == 1.0


def test_the_explanation_quotes_each_reference_files_numbers():
    for mode in ("quick", "full"):
        text = compare.explain_reference_scaling(mode, baseline="serial")
        for document in compare.load_references(mode):
            found = compare.reference_scaling(document, baseline="serial")
            base = found.baseline_seconds
            assert document["file"] in text and f"**{found.top.median:.2f}×**" in text
            assert f"took {base.low:#.3g}–{base.high:#.3g} s" in text
            for e in found.karp_flatt().values():
                assert f"{e:.3f}" in text
        # caches are named only to rule them out, and only where a bend is visible
        assert text.count("caches") == text.count("it is not shared caches or memory bandwidth")
        assert all(f"{mode} mode" in line for line in text.splitlines() if "**" in line)


def test_the_explanation_reports_a_spread_larger_than_the_bend():
    """The 16-CPU file that started this: its serial runs spread wider than the bend."""
    sixteen = [d for d in compare.load_references("full") if d["machine"]["usable_cpus"] >= 8]
    assert sixteen, "no full-mode reference with many CPUs"
    found = compare.reference_scaling(sixteen[0], baseline="serial")
    assert found.noisy and found.karp_flatt_trend() == "falls"
    text = compare.explain_reference_scaling("full", baseline="serial")
    assert "reported, not explained" in text and "*falls*" in text
    assert "it is not shared caches or memory bandwidth" in text


def test_reference_speedups_draw_like_with_like():
    quick = compare.reference_speedups(mode="quick")
    assert quick and all("(quick: " in label for label in quick)
    for document in compare.load_references("quick"):
        found = compare.reference_scaling(document, baseline="one worker")
        assert quick[f"reference: {found.short_label}"] == found.speedups
    # notebook 08's call, unchanged: full-mode references, labels it can strip
    full = compare.reference_speedups("python", "ProcessPoolExecutor")
    assert full and all(k.startswith("reference: ") and "(full: " in k for k in full)
    assert compare.short_cpu("Intel(R) Xeon(R) Processor") == "Intel Xeon"
    assert len(compare.reference_speedups(mode=None)) == len(quick) + len(full)


def fake_reference(directory, name, speedup, serial, mode="full", parallel=None, **card):
    """A course reference file: ProcessPoolExecutor at ``speedup`` {workers: ×} over a serial
    loop taking ``serial`` seconds per repeat; parallel runs take ``parallel`` / speedup
    (the serial median, unless given: then the baseline's noise is not in them)."""
    records = []
    for repeat, seconds in enumerate(serial):
        base = parallel if parallel is not None else seconds
        for executor, workers, took in [("serial", 1, seconds)] + [
                ("ProcessPoolExecutor", p, base / s) for p, s in speedup.items()]:
            records.append(measure.Measurement(
                experiment="scaling", executor=executor, workers=workers, workload="python",
                task_seconds=0.01, tasks=64, repeat=repeat, seconds=took,
                start_method="fork", mode=mode, machine_id="fake").as_dict())
    machine = {"cpu_model": f"Fake {name}", "usable_cpus": max(speedup), "python": "3.14.0",
               "gil_enabled": True, **card}
    document = {"kind": suite.KIND, "mode": mode, "created": "2026-01-01T00:00:00",
                "machine": machine, "records": records,
                "schema_version": measure.SCHEMA_VERSION}
    (directory / f"{name}.json").write_text(json.dumps(document))


def amdahl(f, workers=(1, 2, 4, 8), growing=0.0):
    return {p: 1 / (f + (1 - f) / p + growing * (p - 1)) for p in workers}


@pytest.mark.parametrize(("speedup", "trend", "words"), [
    (amdahl(0.05), "level", "Amdahl's law describes this curve"),
    (amdahl(0.02, growing=0.01), "rises", "the sign of a cost that grows"),
])
def test_a_steady_baseline_lets_the_bend_be_read(tmp_path, speedup, trend, words):
    fake_reference(tmp_path, "steady", speedup, serial=[1.0, 1.01, 0.99])
    found = compare.reference_scaling(compare.load_references("full", tmp_path)[0])
    assert not found.noisy and found.karp_flatt_trend() == trend
    text = compare.explain_reference_scaling("full", baseline="serial", directory=tmp_path)
    assert words in text and "smaller than" in text and "reported, not explained" not in text


def test_a_noisy_baseline_is_reported_not_explained(tmp_path):
    fake_reference(tmp_path, "noisy", {1: 1.0, 2: 1.6, 4: 3.3, 8: 6.0},
                   serial=[0.6, 1.0, 0.8], parallel=0.8)
    found = compare.reference_scaling(compare.load_references("full", tmp_path)[0])
    assert found.baseline_spread == pytest.approx(0.5) and found.shortfall == pytest.approx(0.25)
    assert found.noisy and found.karp_flatt_trend() == "falls"
    assert found.karp_flatt()[2] == pytest.approx(0.25)
    text = compare.explain_reference_scaling("full", baseline="serial", directory=tmp_path)
    assert "0.600–1.00 s" in text and "50%" in text and "25%" in text
    assert "reported, not explained" in text and "*falls*" in text and "0.250 at 2" in text


def test_a_free_threaded_reference_says_so_and_modes_stay_apart(tmp_path):
    fake_reference(tmp_path, "ft", amdahl(0.05), serial=[1.0, 1.0, 1.0], mode="quick",
                   gil_enabled=False, free_threaded_build=True)
    text = compare.explain_reference_scaling("quick", directory=tmp_path)
    assert "Python 3.14.0 free-threaded, GIL off" in text
    assert "Fake ft" in text and "no reference in" not in text
    fallback = compare.explain_reference_scaling("full", directory=tmp_path)
    assert "There is no reference in full mode" in fallback and "Fake ft" in fallback
    assert compare.reference_speedups(directory=tmp_path) == {}  # full only: none
    assert "No reference" in compare.explain_reference_scaling("full", directory=tmp_path / "x")


def test_the_task_size_explanation_quotes_the_reference_files():
    for mode in ("quick", "full"):
        text = compare.explain_reference_task_size(mode)
        for document in compare.load_references(mode):
            table = Summary.from_json(document["summary"]).task_size
            points = table.efficiency["ProcessPoolExecutor"]
            assert f"{points[max(points)]:.0%} with {max(points):g} ms tasks" in text
            assert f"{table.workers} workers" in text


def test_references_from_an_older_plan_say_so_beside_a_new_run(tmp_path):
    import shutil

    from helpers.core import paths

    old = paths.REPO_ROOT / "data" / "reference" / "course-16cpu-intel-xeon-quick.json"
    shutil.copy(old, tmp_path / old.name)
    mine = {"mode": "quick", "plan": dataclasses.asdict(suite.Plan.make(True, usable=2))}
    references, note = compare.comparable(mine, tmp_path)
    assert references and "older plan" in note and old.name in note
    mine["plan"].pop("plan_version")  # two old runs are like each other
    assert "older plan" not in compare.comparable(mine, tmp_path)[1]
