"""The course benchmark's typed summary (``helpers.bench.schema``) and the files in data/.

Every ``data/reference/course-*.json`` must load through ``Summary.from_json``, round-trip,
match what ``suite.summarize`` computes from its own records today, and still feed
notebook 10's comparison. No benchmark runs here: the reference files are the input.
"""

import dataclasses
import json

import pytest
from matplotlib.figure import Figure

from helpers.bench import diagnosis, suite
from helpers.bench.schema import SpeedupPoint, Summary, TaskSizeTable
from helpers.core import measure, paths
from helpers.view import compare

REFERENCES = sorted(paths.REFERENCE_DIR.glob("course-*.json"))
#: Keys the summary gained after the first reference files were measured.
NEWER_KEYS = {"overhead_range", "first_result_range"}


def stored(path):
    return json.loads(path.read_text())


def without_ranges(summary):
    """``summary`` as a file written before the ranges were added would hold it."""
    return dataclasses.replace(summary, overhead_range={}, first_result_range={},
                               task_size=dataclasses.replace(summary.task_size, range={}))


def test_there_are_course_reference_files():
    assert len(REFERENCES) >= 2, REFERENCES
    assert all(stored(path)["kind"] == suite.KIND for path in REFERENCES)


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name)
def test_a_reference_summary_loads_and_round_trips(path):
    summary = Summary.from_json(stored(path)["summary"])
    assert Summary.from_json(summary.to_json()) == summary
    assert summary.speedup and summary.task_size.efficiency and summary.first_result_seconds
    for table in summary.speedup.values():
        for points in table.values():
            assert all(isinstance(workers, int) for workers in points)  # "16" -> 16
            assert all(isinstance(p, SpeedupPoint) and p.low <= p.median <= p.high
                       for p in points.values())
    for points in summary.task_size.efficiency.values():
        assert all(isinstance(ms, float) for ms in points)  # "0.1" -> 0.1


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name)
def test_the_summary_on_disk_is_what_summarize_writes(path):
    """Same shape and numbers: recomputed from the file's records, ``to_json()`` gives the
    stored summary back (files older than the ranges: all but the ranges)."""
    document = stored(path)
    fresh = suite.summarize(measure.records_of(document), document["machine"])
    if NEWER_KEYS <= set(document["summary"]):
        assert fresh.to_json() == document["summary"]
    else:
        assert without_ranges(fresh) == Summary.from_json(document["summary"])
    assert compare.with_summary(document)["summary"] == fresh.to_json()


def as_before_the_ranges(summary: dict) -> dict:
    """A summary as files written before the ranges existed hold it."""
    old = {k: v for k, v in summary.items() if k not in NEWER_KEYS}
    old["task_size"] = {k: v for k, v in summary["task_size"].items() if k != "range"}
    return old


def test_old_files_lack_only_the_ranges_and_read_them_as_empty():
    """Files from before the ranges (the first 2-CPU references were) still read; built from
    today's files, since those old files have been replaced by newer runs."""
    old = [as_before_the_ranges(stored(path)["summary"]) for path in REFERENCES]
    current = set(Summary().to_json())
    for data in old:
        assert current - set(data) == NEWER_KEYS and "range" not in data["task_size"]
        summary = Summary.from_json(data)
        assert summary.overhead_range == {} and summary.first_result_range == {}
        assert summary.task_size.range == {}


def test_a_partial_summary_reads_as_empty_tables():
    assert Summary.from_json({}) == Summary()
    assert Summary.from_json({"speedup": {}}).best("python", "WorkerPool") is None
    table = Summary.from_json({"task_size": {"workers": 2, "efficiency": {
        "ProcessPoolExecutor": {"0.1": 0.4, "1": 0.81, "10": 0.97}}}}).task_size
    assert table == TaskSizeTable(workers=2, efficiency={
        "ProcessPoolExecutor": {0.1: 0.4, 1.0: 0.81, 10.0: 0.97}})
    assert table.break_even_ms() == 1.0 and table.break_even_ms(efficiency=0.99) is None
    assert table.to_json()["efficiency"]["ProcessPoolExecutor"] == {"0.1": 0.4, "1": 0.81,
                                                                    "10": 0.97}


def test_the_colleague_result_is_a_real_summary():
    summary = Summary.from_json(compare.colleague_result()["summary"])
    assert Summary.from_json(summary.to_json()) == summary
    assert summary.best("python", "WorkerPool") == (1, 0.97)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_notebook_10_compares_with_every_reference(mode):
    references = compare.load_references(mode)
    assert references, f"no {mode}-mode reference"
    raw = [{**stored(paths.REFERENCE_DIR / d["file"]), "file": d["file"]} for d in references]
    for mine in (*references, *raw):  # recomputed summaries, and the summaries as stored
        for plot in (compare.speedup_comparison_plot, compare.task_size_plot,
                     compare.overhead_comparison_plot):
            figure = plot(mine, raw)
            assert isinstance(figure, Figure)
            assert sum(len(ax.lines) + len(ax.patches) for ax in figure.axes) > 0
        page = compare.summary_page(mine)
        best = Summary.from_json(mine["summary"]).best("python", "WorkerPool")
        assert f"{best[1]:.2f}× on {best[0]} workers" in page and "Decision guide" in page
        assert compare.explain_scaling(mine, raw).startswith("- **Pure Python")
        assert compare.explain_task_size(mine).startswith("- With ")
        assert compare.explain_costs(mine).startswith("- **One tiny task")
        diagnosis.why_no_speedup(mine)
