"""The learner's first five minutes, in a real browser, and the handouts, offline.

* JupyterLab on 127.0.0.1 (random port, a token), notebook 00 opened in headless
  Chromium (Debian's, driven by Playwright: nothing downloaded), every cell run, the
  dashboard's worker slider moved and Run pressed: the plot must re-render and no cell
  may show an error. A screenshot is saved in build/screenshots/.
* Every handout built by ``make handouts`` (here: into a temporary folder) exists, has
  its figures, shows no error, and loads in Chromium with the network switched off.

Chromium is found as ``chromium`` (Debian) or ``chromium-browser``; ``.ci/run`` installs
it. Where it is missing, the browser parts skip and say so; the handouts are still built
and checked without a browser.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.tools import handouts

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium); .ci/run installs it")
# Every test here is slow and left out of make test-fast: JupyterLab, Chromium, or every
# notebook executed.
pytestmark = [pytest.mark.browser, pytest.mark.slow]
#: Building every handout executes every notebook: about 3 minutes, more on a busy machine,
#: so it is the one item allowed past the suite's 300 s limit. Whichever test uses the
#: (module-scoped) ``built`` first pays for the build, so both tests that use it carry it.
HANDOUT_BUILD_TIMEOUT = 900


def launch(playwright):
    # --no-sandbox: Chromium refuses to sandbox itself when run as root (CI containers)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab serving a *copy* of the notebooks (so autosave cannot write outputs into
    the committed ones); yields its base URL and token."""
    port, token = free_port(), "course-browser-test"
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
         f"--LabServerApp.workspaces_dir={tmp_path / 'workspaces'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "COURSE_QUICK": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
                time.sleep(0.5)
        yield base, token
    finally:
        # stop every kernel first (they start worker processes), then the server
        try:
            kernels = json.load(urllib.request.urlopen(f"{base}/api/kernels?token={token}"))
            for kernel in kernels:
                request = urllib.request.Request(
                    f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
                urllib.request.urlopen(request, timeout=30).read()
        except OSError:
            pass
        lab.terminate()
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()


def run_all_cells(page, tries: int = 3) -> None:
    """Run > Run All Cells, once the kernel is idle; again if no cell started (a click
    made while the page was still settling can be lost)."""
    page.locator("#jp-main-statusbar").get_by_text("Idle").first.wait_for(timeout=120_000)
    for _ in range(tries):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        try:
            page.wait_for_function(
                r"""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                          .some(p => /\[(\*|\d+)\]/.test(p.textContent))""", timeout=30_000)
            return
        except Exception:
            page.keyboard.press("Escape")
    raise AssertionError("Run All Cells did not start any cell")


def wait_until_every_cell_ran(page, timeout_ms: int = 240_000) -> None:
    """Until every code cell shows an execution count ([12]:), not [ ]: or [*]:."""
    page.wait_for_function(
        r"""() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\[\d+\]/.test(p.textContent));
        }""", timeout=timeout_ms)


def error_outputs(page) -> list[str]:
    """Text of every error output (a traceback) in the open notebook."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "nodes => nodes.map(n => n.textContent).filter(t => /Traceback|Error:/.test(t))")


def type_the_solution_and_check(page, marker: str, solution: str, verdict: str) -> None:
    """As a learner does: replace the exercise cell holding ``marker`` with the solution,
    typed into the editor, run it and the check cell after it, and wait for ``verdict``
    (a phrase of the checker's "correct" message)."""
    code = (ROOT / "notebooks" / "solutions" / solution).read_text()
    cell = page.locator(".jp-CodeCell").filter(has_text=marker).first
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")  # runs the exercise cell, selects the check cell
    page.keyboard.press("Shift+Enter")  # runs the check
    page.wait_for_function(
        """verdict => [...document.querySelectorAll('.jp-OutputArea-output')]
               .some(n => n.textContent.includes(verdict))""", arg=verdict, timeout=120_000)
    assert error_outputs(page) == []


@needs_chromium
@pytest.mark.notebooks
def test_notebook_00_runs_in_jupyterlab_and_its_dashboard_redraws(jupyterlab):
    from playwright.sync_api import sync_playwright

    base, token = jupyterlab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/notebooks/00_your_machine.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator, .jp-KernelStatus",
                                   timeout=60_000)
            run_all_cells(page)
            wait_until_every_cell_ran(page)
            assert error_outputs(page) == []

            dashboard = page.locator(".widget-vbox").filter(
                has=page.locator("button", has_text="Run")).first
            dashboard.wait_for(timeout=60_000)  # widget views render after the cell ran
            dashboard.scroll_into_view_if_needed()
            slider = dashboard.locator(".widget-slider").first
            before = slider.locator(".widget-readout").inner_text()
            handle = slider.locator(".noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")  # one worker more than before
            after = slider.locator(".widget-readout").inner_text()
            assert after != before, "the worker slider did not move"
            dashboard.locator("button", has_text="Run").first.click()
            page.wait_for_function(
                """() => [...document.querySelectorAll('.widget-html')]
                       .some(n => n.textContent.includes('done in'))""", timeout=120_000)
            images = dashboard.locator("img")
            assert images.count() >= 1, "the dashboard drew no plot"
            assert images.first.evaluate("img => img.complete && img.naturalWidth > 0")
            assert error_outputs(page) == []
            page.screenshot(path=str(SCREENSHOTS / "notebook-00-dashboard.png"), full_page=False)
            type_the_solution_and_check(page, "def answer_time_job", "00_times_the_job.py",
                                        "Your loop timed")
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "notebook-00-failure.png"), full_page=False)
            raise
        finally:
            browser.close()


# --- handouts ---


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("handouts")
    return out, handouts.build(out, progress=False)


@pytest.mark.notebooks
@pytest.mark.timeout(HANDOUT_BUILD_TIMEOUT)
def test_every_notebook_has_a_handout_with_its_figures_and_no_error(built):
    out, made = built
    assert [h.notebook for h in made] == [p.name for p in handouts.notebooks()]
    index = (out / "index.html").read_text()
    for handout in made:
        page = (out / handout.html).read_text()
        assert handout.html in index and html.escape(handout.title) in index
        assert handout.errors == 0
        assert handout.figures >= 1, f"{handout.notebook} drew no figure"
        assert page.count("data:image/png;base64") >= handout.figures
        assert not re.search(r"<(script|link)[^>]*(src|href)=[\"']https?://", page)
        assert 'class="jp-OutputArea-output" data-mime-type="application/vnd.jupyter.widget' \
            not in page
    assert "Interactive dashboard." in (out / "00_your_machine.html").read_text()


@needs_chromium
@pytest.mark.notebooks
@pytest.mark.timeout(HANDOUT_BUILD_TIMEOUT)
def test_handouts_load_offline_in_chromium(built):
    from playwright.sync_api import sync_playwright

    out, made = built
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(offline=True)
            for name in ["index.html", *(h.html for h in made)]:
                page = context.new_page()
                failed: list[str] = []
                page.on("requestfailed", lambda request, failed=failed: failed.append(request.url))
                page.goto((out / name).as_uri())
                page.wait_for_load_state("load")
                broken = page.evaluate(
                    "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                    ".length")
                assert failed == [] and broken == 0, (name, failed, broken)
                page.close()
        finally:
            browser.close()
