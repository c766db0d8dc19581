"""Notebook 07: five ways to move data, all correct; shared memory always cleaned up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.experiments import data_transfer

ROOT = Path(__file__).resolve().parent.parent
needs_shm = pytest.mark.skipif(not Path("/dev/shm").is_dir(),
                               reason="no /dev/shm on this OS: segments cannot be listed")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_method_delivers_every_byte(method):
    rows = data_transfer.transfer_costs(sizes=[1024, 3 * 2**20 + 7], repeats=1,
                                        start_method=method)
    measured = [r for r in rows if "seconds" in r]
    assert {r["method"] for r in measured} == set(data_transfer.METHODS)
    assert all(r["correct"] for r in measured)


def test_payloads_above_the_limits_are_skipped_with_a_reason(monkeypatch):
    monkeypatch.setattr(data_transfer, "size_limits",
                        lambda: {m: 2**20 for m in data_transfer.METHODS})
    rows = data_transfer.transfer_costs(sizes=[2 * 2**20], repeats=1)
    assert all("over this machine's limit of 1 MiB" in r["skipped"] for r in rows)


@needs_shm
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_crashed_worker_leaves_no_segment_behind(method):
    before = set(os.listdir("/dev/shm"))
    result = data_transfer.crash_while_attached(method)
    assert result["exit_code"] == 3 and result["left_in_shm"] == []
    assert set(os.listdir("/dev/shm")) - before == set()


def test_the_owner_unlinks_even_when_the_block_fails():
    with pytest.raises(RuntimeError), data_transfer.owned_shared_memory(4096) as segment:
        name = segment.name
        raise RuntimeError("something went wrong while the segment was in use")
    with pytest.raises(FileNotFoundError):
        data_transfer.shared_memory.SharedMemory(name=name)


@needs_shm
@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", ["07_moving_data.ipynb", "04_joblib.ipynb"])
def test_the_notebook_leaves_nothing_in_dev_shm(notebook, tmp_path):
    """Run the whole notebook in a kernel (quick mode); /dev/shm must be as it was."""
    before = set(os.listdir("/dev/shm"))
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=120", "--output-dir", str(tmp_path),
         str(ROOT / "notebooks" / notebook)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COURSE_QUICK": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    new = set(os.listdir("/dev/shm")) - before
    ours = {n for n in new if n.startswith(("psm_", "course-", "joblib_", "sem.loky"))}
    assert ours == set()
