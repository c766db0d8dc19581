"""INSTRUCTORS.md and the notebook headers: every number has one source, and agrees with it.

Reference-machine figures come from ``data/reference/`` (written into INSTRUCTORS.md by
``python -m helpers.view.instructors``); run times from each notebook's
``metadata.course``. These tests fail when a typed number drifts from its source.
"""

import json
import re

import pytest

from helpers.bench import suite
from helpers.bench.schema import Summary
from helpers.core import paths
from helpers.view import compare, instructors

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]*_*.ipynb"))
#: The notebooks whose prose about reference machines is generated (this issue's scope).
GENERATED_PROSE = ("00_your_machine.ipynb", "03b_what_a_task_costs.ipynb", "10_capstone.ipynb")
#: A speedup or slowdown typed as a number: "9.6×", "10 ×", "9.6–10.2×".
TYPED_FACTOR = re.compile(r"\d(?:[.,]\d+)?\s?×")


def outside_generated(text: str) -> str:
    """``text`` without its generated sections."""
    for name in instructors.SECTIONS:
        text = re.sub(re.escape(instructors.begin(name)) + ".*?" + re.escape(instructors.end(name)),
                      "", text, flags=re.DOTALL)
    return text


def test_instructors_md_is_what_its_sources_generate():
    text = instructors.INSTRUCTORS.read_text()
    assert instructors.render(text) == text, (
        f"INSTRUCTORS.md is out of date with data/reference or the notebooks' metadata: "
        f"run `{instructors.COMMAND}`")
    assert instructors.main(["--check"]) == 0


def test_no_reference_figure_is_typed_into_instructors_md():
    prose = outside_generated(instructors.INSTRUCTORS.read_text())
    prose = re.sub(r'"[^"\n]*"', "", prose)  # quoted misconceptions ("8× faster") are not data
    assert TYPED_FACTOR.findall(prose) == []
    assert "16-CPU" not in prose and "16 CPUs" not in prose


@pytest.mark.parametrize("name", GENERATED_PROSE)
def test_no_reference_figure_is_typed_into_the_notebooks_prose(name):
    cells = json.loads((paths.NOTEBOOKS_DIR / name).read_text())["cells"]
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert TYPED_FACTOR.findall(prose) == []
    for typed in ("16-CPU", "16 CPUs", "shared caches", "memory bandwidth", "planned"):
        assert typed not in prose, typed


def test_the_typical_numbers_are_the_reference_files_numbers():
    table = instructors.typical_numbers()
    for document in compare.load_references():
        summary = Summary.from_json(document["summary"])
        workers, speedup = summary.best("python", "ProcessPoolExecutor")
        assert f"{speedup:.2f}× " in table and f"({workers} workers)" in table
        raw = json.loads((paths.REFERENCE_DIR / document["file"]).read_text())["records"]
        serial = [r["seconds"] for r in raw if r["experiment"] == "scaling"
                  and r["workload"] == "python" and r["executor"] == "serial"]
        assert f"serial {min(serial):#.3g}–{max(serial):#.3g} s" in table
        assert document["file"] in table


def test_the_typical_numbers_say_what_a_file_lacks(tmp_path):
    assert "No reference results" in instructors.typical_numbers(tmp_path)
    thin = {"kind": suite.KIND, "mode": "quick", "created": "2026-01-01",
            "machine": {"cpu_model": "Test CPU", "usable_cpus": 4, "python": "3.14.0"},
            "records": []}
    (tmp_path / "thin.json").write_text(json.dumps(thin))
    table = instructors.typical_numbers(tmp_path)
    assert "4-CPU Test CPU, Python 3.14.0, quick" in table
    assert table.count("–") >= len(instructors.ROWS)  # every figure missing, none invented


def test_timings_come_from_each_notebooks_metadata():
    rows = instructors.notebook_timings()
    assert [r["file"] for r in rows] == [p.name for p in NOTEBOOKS]
    table = instructors.timings()
    for row in rows:
        assert f"| {row['number']} | {row['name']} | {row['learner_minutes']} min | " \
               f"~{row['run_seconds']} s" in table
    assert instructors.short_name("# 03 — Processes: what they cost") == "processes"
    assert instructors.short_name("# 05 — Build a worker pool") == "build a worker pool"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebooks_header_quotes_its_metadata_run_times(path):
    course = json.loads(path.read_text())["metadata"]["course"]
    assert instructors.header_run_time(path) == course["run_seconds"]
    if course.get("quick_run_seconds") is not None:
        assert instructors.header_quick_run_time(path) == course["quick_run_seconds"]
    first = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert f"**Learner time:** {course['learner_minutes']} minutes" in first


def test_render_replaces_only_the_marked_sections():
    text = (f"intro 3×\n{instructors.begin('timings')}\nold\n{instructors.end('timings')}\n"
            f"{instructors.begin('typical-numbers')}\n{instructors.end('typical-numbers')}\nend")
    fresh = instructors.render(text, {"timings": "NEW", "typical-numbers": "T"})
    assert fresh.startswith("intro 3×\n") and fresh.endswith("\nend")
    assert "old" not in fresh and "\nNEW\n" in fresh and "\nT\n" in fresh
    with pytest.raises(ValueError, match="no generated section 'timings'"):
        instructors.render("no markers", {"timings": "NEW"})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_readme_quotes_each_notebooks_metadata_run_times(path):
    """README's notebook table: the run-time column says what the notebook's metadata says."""
    course = json.loads(path.read_text())["metadata"]["course"]
    key = path.name.split("_")[0]
    readme = (paths.REPO_ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| {key} | "))
    run_time = row.split(" | ")[-2]
    assert re.match(rf"~{course['run_seconds']} s\b", run_time), (key, run_time)
    quick = course.get("quick_run_seconds")
    if quick is not None and quick != course["run_seconds"]:
        assert f"~{quick} s" in run_time, (key, run_time)
