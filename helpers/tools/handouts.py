"""Handouts: every notebook executed (quick mode) and saved as HTML that opens offline.

::

    notebooks/NN_*.ipynb ──execute (nbclient, COURSE_QUICK=1, the course's kernel)──>
        outputs: figures are PNGs (embedded as data: URLs by nbconvert);
                 a live widget becomes a short note (its controls need a running kernel)
    ──HTMLExporter (lab template)──> strip every <script>/<link> that points at the web
    ──> build/handouts/NN_*.html  +  index.html (title, objectives, learner time,
                                     measured run time, the machine the handouts ran on)

``python -m helpers.tools.handouts [--out build/handouts] [notebook ...]``, or ``make handouts``.
A notebook whose cells raise stops the build with the error: a handout never shows one.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from helpers.core import config, machine, paths

ROOT = paths.REPO_ROOT
NOTEBOOKS = paths.NOTEBOOKS_DIR
DEFAULT_OUT = ROOT / "build" / "handouts"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<div class='course-widget-note' style='border:1px dashed #999;padding:0.6em'>"
               "<b>Interactive dashboard.</b> Its sliders and Run button need a running "
               "kernel: open this notebook in JupyterLab (<code>make lab</code>) to use it."
               "</div>")
#: <script src="https://…"></script> and <link href="https://…">: fetched from the web (or
#: src="": the loaders switched off above).
REMOTE_TAG = re.compile(r"""<(script|link)\b[^>]*\b(?:src|href)=["'](?:https?://[^"']*)?["']"""
                        r"""[^>]*>(?:\s*</script>)?""", re.IGNORECASE)
#: An inline <script> whose code imports from the web (nbconvert's mermaid loader).
REMOTE_IMPORT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*"
                           r"</script>", re.IGNORECASE | re.DOTALL)


@dataclass
class Handout:
    """One executed notebook, as the index lists it."""

    notebook: str
    html: str
    title: str
    objectives: list[str]
    learner_time: str
    run_seconds: float
    figures: int
    errors: int


def notebooks() -> list[Path]:
    """The course's notebooks, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*_*.ipynb"))  # 06b_ too


def execute(path: Path, timeout: int = 120) -> tuple[nbformat.NotebookNode, float]:
    """Run every cell of ``path`` in quick mode in the course's kernel; (notebook, seconds)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    previous = os.environ.get("COURSE_QUICK")
    os.environ["COURSE_QUICK"] = "1"
    try:
        start = time.perf_counter()
        NotebookClient(notebook, timeout=timeout, kernel_name=config.KERNEL_NAME,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        return notebook, time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("COURSE_QUICK", None)
        else:
            os.environ["COURSE_QUICK"] = previous


def make_static(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace live widgets by a note and drop the widget state (it needs a CDN to draw)."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                output["data"] = {"text/html": WIDGET_NOTE,
                                  "text/plain": "(interactive dashboard: open in JupyterLab)"}
    return notebook


def to_html(notebook: nbformat.NotebookNode, title: str = "Notebook") -> str:
    """Self-contained HTML: images inline, no script or stylesheet fetched from the web."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True, mathjax_url="",
                            require_js_url="")
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return REMOTE_IMPORT.sub("", REMOTE_TAG.sub("", body))


def describe(path: Path, notebook: nbformat.NotebookNode) -> tuple[str, list[str], str]:
    """(title, learning objectives, learner time) from the notebook's first cell."""
    first = "".join(notebook.cells[0].source)
    title = first.splitlines()[0].lstrip("# ").strip()
    objectives = [line[2:].strip() for line in first.split("Learning objectives", 1)[-1]
                  .splitlines() if line.startswith("- ")]
    found = re.search(r"\*\*Learner time:\*\*\s*([^·\n]+)", first)
    return title, objectives, found.group(1).strip() if found else "?"


def count_errors(notebook: nbformat.NotebookNode) -> int:
    return sum(output.get("output_type") == "error"
               for cell in notebook.cells for output in cell.get("outputs", []))


def count_figures(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells for output in cell.get("outputs", []))


def build(out: Path = DEFAULT_OUT, paths: list[Path] | None = None,
          progress: bool = True) -> list[Handout]:
    """Execute and export every notebook (or ``paths``); write the index. Returns the list."""
    out.mkdir(parents=True, exist_ok=True)
    handouts = []
    for path in paths or notebooks():
        if progress:
            print(f"executing {path.name} …", file=sys.stderr, flush=True)
        notebook, seconds = execute(path)
        static = make_static(notebook)
        title, objectives, learner = describe(path, static)
        target = out / f"{path.stem}.html"
        target.write_text(to_html(static, title), encoding="utf-8")
        handouts.append(Handout(path.name, target.name, title, objectives, learner, seconds,
                                count_figures(static), count_errors(static)))
        if progress:
            print(f"  {target.name}: {seconds:.0f} s, {handouts[-1].figures} figures",
                  file=sys.stderr, flush=True)
    (out / "index.html").write_text(index_page(handouts), encoding="utf-8")
    (out / "handouts.json").write_text(json.dumps([h.__dict__ for h in handouts], indent=1))
    return handouts


def index_page(handouts: list[Handout]) -> str:
    """The handouts' table of contents, with the machine they were run on."""
    card = machine.machine_card()
    rows = "".join(
        f"<tr><td><a href='{html.escape(h.html)}'>{html.escape(h.title)}</a></td>"
        f"<td><ul>{''.join(f'<li>{html.escape(o)}</li>' for o in h.objectives)}</ul></td>"
        f"<td>{html.escape(h.learner_time)}</td><td>{h.run_seconds:.0f} s</td>"
        f"<td>{h.figures}</td></tr>" for h in handouts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Scaling CPU-bound Python: handouts</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:0.4em;vertical-align:top}}
</style></head><body>
<h1>Scaling CPU-bound Python: the event loop, threads and processes</h1>
<p>Every notebook below was executed in quick mode on <b>{html.escape(card.cpu_model)}</b>,
{card.usable_cpus} usable CPUs, Python {html.escape(card.python)}, {html.escape(card.os)},
start method {html.escape(card.start_method)}, on {time.strftime('%Y-%m-%d %H:%M')}. The numbers
in each handout are that machine's; run the notebooks to get yours.</p>
<table><tr><th>notebook</th><th>learning objectives</th><th>learner time</th>
<th>run time (quick)</th><th>figures</th></tr>{rows}</table>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.tools.handouts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: all of them")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    missing = [p for p in args.notebooks if not p.exists()]
    if missing:
        parser.error(f"no such notebook: {', '.join(map(str, missing))}")
    handouts = build(args.out, [p.resolve() for p in args.notebooks] or None)
    print(f"wrote {len(handouts)} handouts and index.html to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
