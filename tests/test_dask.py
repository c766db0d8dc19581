"""Notebook 09's helpers: one Dask cluster, found by address or started here, always closed;
the experiments on it; and no worker outliving a killed kernel."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from helpers.experiments import dask_runs
from helpers.servers import dask_cluster
from helpers.view import widgets


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def session():
    """A fresh 2-worker LocalCluster per test (about a second): conftest then checks that
    closing it leaves no process behind."""
    session = dask_cluster.start(workers=2)
    yield session
    session.close()


def test_start_without_an_address_starts_a_local_cluster_on_loopback(session):
    assert session.started_here
    assert session.address.startswith("tcp://127.0.0.1:")
    assert session.workers == 2
    assert len(session.worker_pids()) == 2
    assert "LocalCluster" in session.describe()


def test_dashboard_link_is_given_when_bokeh_is_installed(session, monkeypatch):
    if dask_cluster.bokeh_installed():
        assert session.dashboard_link.startswith("http://127.0.0.1:")
    monkeypatch.setattr(dask_cluster, "bokeh_installed", lambda: False)
    assert session.dashboard_link is None


def test_an_address_in_the_environment_is_used_instead(session, monkeypatch):
    monkeypatch.setenv(dask_cluster.ADDRESS_VARIABLE, session.address)
    other = dask_cluster.start()
    try:
        assert not other.started_here and other.cluster is None
        assert other.workers == 2
        assert other.worker_pids() == session.worker_pids()
        assert "DASK_SCHEDULER_ADDRESS" in other.describe()
    finally:
        other.close()  # closes our client only: the cluster keeps serving
    assert session.client.submit(sum, [1, 2], pure=False).result() == 3


def test_local_ignores_the_environment(monkeypatch):
    monkeypatch.setenv(dask_cluster.ADDRESS_VARIABLE, "tcp://192.0.2.1:8786")  # unreachable
    with dask_cluster.start(workers=1, local=True) as session:
        assert session.started_here and session.address.startswith("tcp://127.0.0.1:")


def test_dashboard_starts_and_closes_its_own_cluster():
    board = widgets.dask_dashboard()
    board.task_ms.value = 1000  # over 200 ms: a message saying what is allowed, no run
    board.button.click()
    assert board.runs_started == 0
    assert "choose 1 to 200 ms" in board.output.outputs[0]["data"]["text/markdown"]
    board.workers.value = 1
    board.task_ms.value = 10
    board.button.click()
    assert board.wait(timeout=120)
    rows, _ = board.result
    assert {r["way"] for r in rows} == set(dask_runs.WAYS)
    assert all(r["workers"] == 1 for r in rows)


def test_bad_worker_count_says_what_is_allowed():
    with pytest.raises(ValueError, match="workers must be a positive whole number"):
        dask_cluster.start(workers=0)


@pytest.mark.slow
def test_the_same_job_runs_every_way(session):
    """Every way runs and is timed; how much each speeds up is notebook 09's measurement,
    not an assertion (16 tasks of 30 ms on a loaded 2-CPU machine prove nothing)."""
    rows = dask_runs.same_job_every_way(session, task_seconds=0.03, tasks=16, repeats=2)
    assert {r["way"] for r in rows} == set(dask_runs.WAYS)
    assert all(r["seconds"] > 0 for r in rows)
    speedups = dask_runs.speedups(rows)
    assert speedups["serial"].median == 1.0
    assert set(speedups) == set(dask_runs.WAYS)


@pytest.mark.slow
def test_scattering_once_beats_sending_every_time(session):
    # 24 tasks: sending 16 MiB with each costs ~6× scattering it once (8 tasks: only ~3×,
    # too close to the 1.5× asserted for a loaded machine)
    # (medians of 3: one stall of a ~0.2 s scattered run must not decide it)
    rows = dask_runs.scatter_or_send(session, payload_mib=16, tasks=24, repeats=3)
    assert all(r["correct"] for r in rows)
    sent = statistics.median(r["seconds"] for r in rows if r["way"] == "sent with every task")
    scattered = statistics.median(r["seconds"] for r in rows if r["way"] == "scattered once")
    assert sent > 1.5 * scattered


def test_task_stream_becomes_course_records(session):
    timeline = dask_runs.task_stream_timeline(session, task_seconds=0.01, tasks=6)
    assert len(timeline.records) == 6
    assert {r.worker for r in timeline.records} <= {"worker 1", "worker 2"}
    assert all(0 <= r.started < r.finished <= timeline.seconds + 0.5 for r in timeline.records)


def test_task_stream_records_from_synthetic_entries():
    data = [{"worker": "tcp://b", "startstops": ({"action": "transfer", "start": 9, "stop": 10},
                                                 {"action": "compute", "start": 10, "stop": 11})},
            {"worker": "tcp://a", "startstops": ({"action": "compute", "start": 10.5,
                                                  "stop": 12},)}]
    records = dask_runs.task_stream_records(data, start=10)
    assert [(r.worker, r.started, r.finished) for r in records] == [
        ("worker 2", 0, 1), ("worker 1", 0.5, 2)]


def test_close_stops_the_workers():
    session = dask_cluster.start(workers=1)
    pids = session.worker_pids()
    session.close()
    session.close()  # twice is fine
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is Unix-only")
def test_workers_do_not_outlive_a_killed_kernel(tmp_path):
    """A kernel that starts a cluster and is then SIGKILLed (a restart) leaves nothing."""
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent("""
        import time
        from helpers.servers import dask_cluster
        if __name__ == "__main__":
            session = dask_cluster.start(workers=2)
            print(" ".join(str(p) for p in session.worker_pids()), flush=True)
            time.sleep(120)
    """))
    kernel = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in kernel.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in pids if alive(p)], "Dask workers outlived their kernel"
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        kernel.stdout.close()
