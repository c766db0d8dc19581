"""Repository hygiene: clean notebooks, their opening cell, and one package list everywhere."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.core import config

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))  # 06b_ too


def load(path):
    return json.loads(path.read_text())


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    dirty = [i for i, cell in enumerate(load(path)["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_title_objectives_and_times(path):
    first = "".join(load(path)["cells"][0]["source"])
    assert first.startswith("# "), "the first cell must be the title"
    for needed in ("Learning objectives", "Learner time", "Run time"):
        assert needed in first, f"the first cell lacks '{needed}'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata(path):
    metadata = load(path)["metadata"]
    assert metadata["kernelspec"]["name"] == config.KERNEL_NAME
    assert isinstance(metadata["course"]["starts_processes"], bool)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_named_in_a_notebook_exist(path):
    text = path.read_text()
    for name in re.findall(r"%load solutions/([\w.]+\.py)", text):
        assert (ROOT / "notebooks" / "solutions" / name).exists(), name


def exercise_checks(path) -> list[str]:
    """The checker named by each exercise's check cell (``checks.<name>(answer...)``)."""
    names = []
    for cell in load(path)["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            names += re.findall(r"^checks\.(\w+)\([aA]nswer", source, flags=re.MULTILINE)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_ends_with_two_or_three_exercises(path):
    checks_used = exercise_checks(path)
    assert 2 <= len(checks_used) <= 3, f"{len(checks_used)} exercises"
    solutions = re.findall(r"%load solutions/([\w.]+\.py)", path.read_text())
    assert len(solutions) == len(checks_used), "every exercise needs its solution"
    cells = load(path)["cells"]
    last_check = max(i for i, c in enumerate(cells) if c["cell_type"] == "code"
                     and re.search(r"^checks\.\w+\([aA]nswer", "".join(c["source"]), re.MULTILINE))
    later_code = [c for c in cells[last_check + 1:] if c["cell_type"] == "code"]
    assert not later_code, "the exercises come last (only prose after them)"


def test_every_checker_is_tested_with_its_solution():
    # test_checks.py, or the notebook's own test file (06b's: test_web_stack.py)
    tests = "".join(path.read_text() for path in sorted((ROOT / "tests").glob("test_*.py")))
    for path in NOTEBOOKS:
        for name in exercise_checks(path):
            assert f"checks.{name}(" in tests, f"checks.{name} is not tested"
        for solution in re.findall(r"%load solutions/([\w.]+\.py)", path.read_text()):
            assert solution in tests, f"solution {solution} is not run by a test"


def _names(requirements):
    return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def _every_requirement(project):
    """The plain install's dependencies and every extra's (make setup installs them all)."""
    return project["dependencies"] + [requirement
                                      for extra in project["optional-dependencies"].values()
                                      for requirement in extra]


def test_environment_yml_and_pyproject_name_the_same_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = _names(_every_requirement(project))
    text = (ROOT / "environment.yml").read_text()
    conda = []
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z][\w.-]*)", line)
        if match:
            conda.append(match.group(1))
    conda_names = _names(conda) - {"python", "pip"}
    assert conda_names == pip_names


def test_the_conda_pip_section_installs(tmp_path):
    """conda writes the ``pip:`` entries, one a line, to a requirements file beside
    environment.yml and runs ``pip install -r`` on it: do exactly that, as a dry run.
    (conda itself is not available on the course's machines.)"""
    import yaml

    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1 and sections[0], "environment.yml needs one pip section"
    requirements = ROOT / f"condaenv.{os.getpid()}.{tmp_path.name}.requirements.txt"
    requirements.write_text("\n".join(sections[0]) + "\n")
    try:
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run",
                              "-r", requirements.name],
                             capture_output=True, text=True, cwd=ROOT, timeout=240)
    finally:
        requirements.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "scaling-cpu-python" in run.stdout.lower().replace("_", "-")


def test_constraints_pin_every_direct_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(_every_requirement(project))
    pinned = {line.split("==")[0].strip().lower()
              for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert wanted <= pinned, f"not pinned: {wanted - pinned}; run `make lock`"


def test_preflight_passes_in_this_environment():
    run = subprocess.run([sys.executable, "-m", "helpers.tools.preflight"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ready." in run.stdout


REFERENCE_FILES = sorted((ROOT / "data" / "reference").glob("*.json"))


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.name)
def test_reference_results_follow_the_schema(path):
    from helpers.core import measure

    document, records = measure.load_results(path)
    assert records, "a reference file must hold measured records"
    for key in ("cpu_model", "usable_cpus", "python", "os", "machine_id"):
        assert document["machine"].get(key) not in (None, ""), f"machine card lacks {key}"
    assert document["mode"] in ("quick", "full")
    assert {r.machine_id for r in records} == {document["machine"]["machine_id"]}


def test_every_reference_file_is_listed_in_the_data_readme():
    readme = (ROOT / "data" / "README.md").read_text()
    for path in REFERENCE_FILES:
        assert f"reference/{path.name}" in readme


def test_make_setup_installs_every_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    makefile = (ROOT / "Makefile").read_text()
    learner = re.search(r"^LEARNER_EXTRAS := (.+)$", makefile, re.MULTILINE).group(1)
    everything = re.search(r"^EXTRAS := (.+)$", makefile, re.MULTILINE).group(1)
    assert everything == "$(LEARNER_EXTRAS),test"
    assert set(learner.split(",")) | {"test"} == set(project["optional-dependencies"])
    assert "lab: $(LEARNER_STAMP)" in makefile  # a learner gets no test tools


PROCESS_NOTEBOOKS = ROOT / ".ci" / "process_notebooks.py"


def test_the_start_method_passes_find_every_notebook_that_starts_processes(tmp_path):
    """make test's spawn and forkserver passes: read from the metadata as JSON (any
    spacing), and an empty list is an error, not a pass that runs nothing."""
    run = subprocess.run([sys.executable, str(PROCESS_NOTEBOOKS)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    expected = [f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
                if load(p)["metadata"]["course"]["starts_processes"]]
    assert run.stdout.split() == expected and expected

    def notebook(name, flag):
        text = json.dumps({"cells": [], "metadata": {"course": {"starts_processes": flag}}},
                          indent=None, separators=(",", ":"))  # spacing grep would miss
        (tmp_path / name).write_text(text)

    notebook("a.ipynb", False)
    run = subprocess.run([sys.executable, str(PROCESS_NOTEBOOKS), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "would run nothing" in run.stderr and not run.stdout
    notebook("b.ipynb", True)
    run = subprocess.run([sys.executable, str(PROCESS_NOTEBOOKS), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.split() == [str(tmp_path / "b.ipynb")]
    notebook("c.ipynb", "yes")
    run = subprocess.run([sys.executable, str(PROCESS_NOTEBOOKS), str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "must be true or false" in run.stderr


def test_make_test_runs_ruff_first_and_every_start_method_pass():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: .*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    lines = recipe.splitlines()
    assert "ruff check" in lines[0]
    for method in ("spawn", "forkserver"):
        assert f"$(call start_method_pass,{method})" in recipe

#: Packages that only the extras bring: the benchmark must not need any of them.
EXTRAS_ONLY = ("matplotlib", "ipywidgets", "IPython", "jupyterlab", "PIL", "tqdm", "dask",
               "distributed", "bokeh", "gunicorn", "pytest")

BARE_SERVER = f"""
import importlib.abc, runpy, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_ONLY!r}:
            raise ImportError(f"{{name}} is not installed on this bare server", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
sys.argv = ["helpers.bench", "--help"]
import helpers.bench.suite, helpers.bench.pool_suite, helpers.bench.diagnosis
runpy.run_module("helpers.bench", run_name="__main__")
"""


def test_the_benchmark_needs_only_the_plain_install():
    """``python -m helpers.bench`` imports nothing that only an extra installs."""
    run = subprocess.run([sys.executable, "-c", BARE_SERVER], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage" in run.stdout.lower()
