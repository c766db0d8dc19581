"""The parts of INSTRUCTORS.md that are computed, never typed: one source for each number.

::

    data/reference/course-*.json ──typical_numbers()──┐
                                                       ├─> render(INSTRUCTORS.md text)
    notebooks/NN_*.ipynb metadata ──timings()──────────┘     between BEGIN/END markers

A document cannot compute, so this module writes its generated sections and the test
suite checks that the file in the repository is what it would write
(``tests/test_instructors.py``). After a new reference file, or a notebook's new
``metadata.course`` run time, run::

    python -m helpers.view.instructors            # rewrite INSTRUCTORS.md
    python -m helpers.view.instructors --check    # exit 1 if it is out of date

The run times have one source: each notebook's ``metadata.course`` (``learner_minutes``,
``run_seconds`` measured in full mode on the course's 2-core machine, and
``quick_run_seconds`` where a notebook records it). Its header's
"**Run time:** about N s" is checked against the same numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.bench.schema import Summary
from helpers.core import measure, paths
from helpers.view import compare

INSTRUCTORS = paths.REPO_ROOT / "INSTRUCTORS.md"
NOTEBOOKS = paths.NOTEBOOKS_DIR
COMMAND = "python -m helpers.view.instructors"
SECTIONS = ("typical-numbers", "timings")


def begin(section: str) -> str:
    return f"<!-- BEGIN generated: {section} (by `{COMMAND}`; do not edit by hand) -->"


def end(section: str) -> str:
    return f"<!-- END generated: {section} -->"


# --- typical numbers, from data/reference ---


def _ordered_references(directory: Path | str) -> list[dict[str, Any]]:
    """Every course reference, fewest CPUs first, quick before full."""
    return sorted(compare.load_references(None, directory),
                  key=lambda d: (d["machine"]["usable_cpus"], d["mode"] != "quick", d["file"]))


def _column_title(document: dict[str, Any]) -> str:
    card = document["machine"]
    return (f"{card['usable_cpus']}-CPU {card['cpu_model']}, Python {card['python']}, "
            f"{document['mode']}")


def _pools(summary: Summary) -> str:
    points = [summary.best("python", name) for name in ("WorkerPool", "ProcessPoolExecutor",
                                                         "joblib")]
    known = [p for p in points if p is not None]
    if not known:
        return "–"
    return " / ".join(f"{p[1]:.2f}×" if p else "–" for p in points) + f" ({known[0][0]} workers)"


def _threads(workload: str) -> Callable[[dict[str, Any], Summary], str]:
    def cell(_: dict[str, Any], summary: Summary) -> str:
        point = summary.best(workload, "threads")
        return f"{point[1]:.2f}× ({point[0]} threads)" if point else "–"
    return cell


def _scaling_job(document: dict[str, Any], _: Summary) -> str:
    found = compare.reference_scaling(document)
    if found is None:
        return "–"
    base = found.baseline_seconds
    return (f"{found.tasks} tasks of {found.task_seconds * 1000:.2g} ms; serial "
            f"{base.low:#.3g}–{base.high:#.3g} s ({found.baseline_spread:.0%} spread)")


def _karp_flatt(document: dict[str, Any], _: Summary) -> str:
    found = compare.reference_scaling(document)
    if found is None or found.workers < 2:
        return "–"
    return ", ".join(f"{e:.3f}" for e in found.karp_flatt().values()) + (
        f" ({found.karp_flatt_trend()})" if found.karp_flatt_trend() else "")


def _tiny_task(_: dict[str, Any], summary: Summary) -> str:
    cost = summary.overhead_seconds_per_task
    names = ("WorkerPool", "ProcessPoolExecutor", "multiprocessing.Pool")
    if not cost:
        return "–"
    return " / ".join(f"{cost[n] * 1e6:.0f}" if n in cost else "–" for n in names) + " µs"


def _efficiency(_: dict[str, Any], summary: Summary) -> str:
    points = summary.task_size.efficiency.get("ProcessPoolExecutor", {})
    if not points:
        return "–"
    sizes = sorted({min(points), *(ms for ms in points if ms == 1.0), max(points)})
    return " / ".join(f"{points[ms]:.0%} ({ms:g} ms)" for ms in sizes)


def _break_even(_: dict[str, Any], summary: Summary) -> str:
    if not summary.task_size.efficiency:
        return "–"
    shortest = summary.task_size.break_even_ms()
    return f"{shortest:g} ms" if shortest is not None else "none measured"


def _first_result(_: dict[str, Any], summary: Summary) -> str:
    first = summary.first_result_seconds
    methods = ("fork", "forkserver", "spawn")
    if not first:
        return "–"
    return " / ".join(f"{first[m]['WorkerPool'] * 1000:.0f}" if "WorkerPool" in first.get(m, {})
                      else "–" for m in methods) + " ms"


def _loop_lag(document: dict[str, Any], summary: Summary) -> str:
    lag = summary.loop_max_lag_seconds
    if not {"inline", "WorkerPool"} <= set(lag):
        return "–"
    work = [r for r in measure.records_of(document) if r.experiment == "loop-lag"
            and r.executor == "inline"]
    what = f" ({work[0].tasks} × {work[0].task_seconds * 1000:.0f} ms of CPU)" if work else ""
    return f"{lag['inline'] * 1000:.0f} / {lag['WorkerPool'] * 1000:.0f} ms{what}"


def _blas(_: dict[str, Any], summary: Summary) -> str:
    if summary.blas is None:
        return "–"
    return (f"{summary.blas.oversubscription_slowdown:.1f}× slower "
            f"({summary.blas.blas_threads} BLAS threads each)")


#: (row title, how to compute its cell from a reference document and its summary)
ROWS: tuple[tuple[str, Callable[[dict[str, Any], Summary], str]], ...] = (
    ("pure Python on processes, speedup over serial: WorkerPool / ProcessPoolExecutor / "
     "joblib", lambda _, summary: _pools(summary)),
    ("pure Python on threads", _threads("python")),
    ("sha256 on threads (releases the GIL)", _threads("sha256")),
    ("the scaling job, and its serial runs' spread", _scaling_job),
    ("Karp–Flatt serial fraction per worker count above one (ProcessPoolExecutor)",
     _karp_flatt),
    ("one tiny task: WorkerPool / ProcessPoolExecutor / multiprocessing.Pool", _tiny_task),
    ("efficiency, one submit per task (ProcessPoolExecutor), by task size", _efficiency),
    ("shortest task at 80 % efficiency (ProcessPoolExecutor)", _break_even),
    ("a new WorkerPool's first result: fork / forkserver / spawn", _first_result),
    ("worst event-loop lag, CPU work inline / offloaded", _loop_lag),
    ("NumPy in processes: BLAS threads not capped, against one each", _blas),
)


def typical_numbers(directory: Path | str = compare.REFERENCE_DIR) -> str:
    """A Markdown table: one column per reference file, one row per figure."""
    documents = _ordered_references(directory)
    if not documents:
        return "No reference results in `data/reference/` yet."
    summaries = [Summary.from_json(d["summary"]) for d in documents]
    header = "| figure | " + " | ".join(_column_title(d) for d in documents) + " |"
    rule = "|---|" + "---|" * len(documents)
    rows = [f"| {title} | " + " | ".join(cell(d, s) for d, s in zip(documents, summaries,
                                                                      strict=True)) + " |"
            for title, cell in ROWS]
    files = ", ".join(f"`{d['file']}`" for d in documents)
    return "\n".join([header, rule, *rows, "", f"Columns, left to right: {files}."])


# --- timings, from the notebooks' metadata ---


def notebook_timings(directory: Path | str = NOTEBOOKS) -> list[dict[str, Any]]:
    """Per notebook: number, short name, learner minutes, run seconds (full, and quick if
    recorded), from ``metadata.course``."""
    rows = []
    for path in sorted(Path(directory).glob("[0-9][0-9]*_*.ipynb")):
        notebook = json.loads(path.read_text())
        course = notebook["metadata"]["course"]
        title = "".join(notebook["cells"][0]["source"]).splitlines()[0]
        number = path.name.split("_", 1)[0]  # "06", "06b"
        rows.append({"number": number, "name": short_name(title), "file": path.name,
                     "learner_minutes": course["learner_minutes"],
                     "run_seconds": course["run_seconds"],
                     "quick_run_seconds": course.get("quick_run_seconds")})
    return rows


def short_name(title: str) -> str:
    """``# 03 — Processes: what they cost`` -> ``processes``."""
    name = title.split("—", 1)[-1].split(":", 1)[0].strip()
    return name[:1].lower() + name[1:]


def timings(directory: Path | str = NOTEBOOKS) -> str:
    """The timings table: learner time and measured run time, per notebook."""
    lines = ["| # | notebook | learner time | run time, 2 cores, full mode (quick mode) |",
             "|---|---|---|---|"]
    for row in notebook_timings(directory):
        quick = (f" (quick: ~{row['quick_run_seconds']} s)"
                 if row["quick_run_seconds"] is not None else "")
        lines.append(f"| {row['number']} | {row['name']} | {row['learner_minutes']} min | "
                     f"~{row['run_seconds']} s{quick} |")
    return "\n".join(lines)


# --- the document ---


def sections(references: Path | str = compare.REFERENCE_DIR,
             notebooks: Path | str = NOTEBOOKS) -> dict[str, str]:
    return {"typical-numbers": typical_numbers(references), "timings": timings(notebooks)}


def render(text: str, generated: dict[str, str] | None = None) -> str:
    """``text`` with every generated section replaced by what it computes now."""
    generated = sections() if generated is None else generated
    for name, body in generated.items():
        pattern = re.compile(re.escape(begin(name)) + r".*?" + re.escape(end(name)), re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"INSTRUCTORS.md has no generated section {name!r}: add the "
                             f"lines {begin(name)!r} and {end(name)!r}")
        replacement = f"{begin(name)}\n{body}\n{end(name)}"
        text = pattern.sub(lambda _, replacement=replacement: replacement, text)
    return text


def header_run_time(path: Path | str) -> int | None:
    """The N of "**Run time:** about N s" in a notebook's first cell."""
    first = "".join(json.loads(Path(path).read_text())["cells"][0]["source"])
    found = re.search(r"\*\*Run time:\*\* about (\d+) s", first)
    return int(found.group(1)) if found else None


def header_quick_run_time(path: Path | str) -> int | None:
    """The M of "(quick mode: about M s)" in a notebook's first cell, if it says one."""
    first = "".join(json.loads(Path(path).read_text())["cells"][0]["source"])
    found = re.search(r"quick mode[^)\n]*?about (\d+) s", first)
    return int(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1, changing nothing, if INSTRUCTORS.md is out of date")
    arguments = parser.parse_args(argv)
    current = INSTRUCTORS.read_text()
    fresh = render(current)
    if arguments.check:
        if fresh != current:
            print(f"INSTRUCTORS.md is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    INSTRUCTORS.write_text(fresh)
    print(f"INSTRUCTORS.md: {'updated' if fresh != current else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
