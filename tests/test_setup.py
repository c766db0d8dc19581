"""The set-up the README promises: the leftover-process guard works, JupyterLab starts."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import _live_descendants, leftovers_after

ROOT = Path(__file__).resolve().parent.parent


def test_the_leftover_guard_catches_a_stray_process():
    before = set(_live_descendants())
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    found = leftovers_after(before, grace=0.2)
    assert stray.pid in found
    assert stray.wait(timeout=5) != 0  # the guard killed it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_starts_and_sees_the_course_kernel():
    port, token = free_port(), "course-test"
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={ROOT}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", timeout=5
                ) as response:
                    specs = json.load(response)["kernelspecs"]
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
                time.sleep(0.5)
        assert "scaling-cpu-python" in specs
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/contents/notebooks/00_your_machine.ipynb"
            f"?token={token}&content=0", timeout=5
        ) as response:
            assert json.load(response)["type"] == "notebook"
    finally:
        lab.terminate()
        lab.wait(timeout=30)
