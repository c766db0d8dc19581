"""Notebook 02's helpers: races, the CPU sampler, other interpreters, the sweeps."""

import json
import os
import stat
import subprocess
import sys

import pytest

from helpers.core import machine, paths
from helpers.core.cpu_sampler import CpuSampler
from helpers.experiments import gil, interpreters, races
from helpers.tasks import faults


def test_the_widened_race_loses_updates_and_the_lock_fixes_it():
    racy = races.race(threads=4, increments=300)
    locked = races.race(threads=4, increments=300, locked=True)
    assert racy.lost > 0, "the read-modify-write window should lose updates every time"
    assert locked.lost == 0 and locked.counted == 1200


def test_lock_cost_is_measured():
    plain, with_lock = races.lock_cost(10_000)
    assert 0 < plain and 0 < with_lock


def test_race_refuses_silly_sizes():
    with pytest.raises(ValueError):
        races.race(threads=0)


def test_the_sampler_sees_gil_bound_threads_use_at_most_one_cpu(quick):
    """The GIL's bound, which a busy machine cannot break (it only lowers both figures).
    How far processes get past one CPU is notebook 02's measurement, not an assertion:
    with another program on the second core they get about 1.3 CPUs, not 2."""
    if not machine.gil_enabled():
        pytest.skip("free-threaded build with the GIL off: threads may use every CPU")
    thread_run, process_run = gil.cpu_use("python", 2)
    assert thread_run.samples and process_run.samples
    assert thread_run.median_busy < 1.4, "two pure-Python threads used two CPUs at once"


def test_the_sampler_stops_with_its_block():
    with CpuSampler(interval=0.02) as sampler:
        faults.spin_for(0.4)  # 20 intervals: a busy sampler still gets one sample in
    assert sampler.samples and sampler._process is None
    with pytest.raises(ValueError, match="interval"):
        CpuSampler(interval=5)


def test_thread_sweep_runs_as_a_module_with_only_the_standard_library(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(paths.REPO_ROOT)
    run = subprocess.run([sys.executable, "-S", "-m", "helpers.tasks.thread_sweep",
                          "--threads", "1,2",
                          "--workloads", "python,sha256", "--tasks", "4", "--repeats", "1",
                          "--task-ms", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr  # -S: no site-packages at all
    document = json.loads(run.stdout)
    assert set(document["results"]["thread"]) == {"python", "sha256"}
    assert document["interpreter"]["version"]


def fake_free_threaded_python(tmp_path):
    """A 'python3.15t' that claims to be free-threaded and runs sweeps with this Python."""
    fake = tmp_path / "python3.15t"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then\n'
        '  echo \'{"version": "3.15.0", "free_threaded_build": true, "gil_enabled": false,'
        ' "executable": "fake"}\'\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


@pytest.mark.skipif(sys.platform == "win32", reason="the fake interpreter is a shell script")
def test_discovery_finds_a_fake_free_threaded_python_and_runs_the_sweep_in_it(tmp_path,
                                                                              monkeypatch):
    fake = fake_free_threaded_python(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = interpreters.find_interpreters()
    ours = [i for i in found if i.path == str(fake)]
    assert ours and ours[0].label == "Python 3.15.0 (free-threaded, GIL off)"
    document = interpreters.run_sweep(ours[0], threads=[1, 2], workloads=["sha256"], tasks=4,
                                      repeats=1, task_ms=2)
    assert set(interpreters.speedups(document)["sha256"]) == {1, 2}


def test_discovery_skips_what_does_not_answer(tmp_path, monkeypatch):
    broken = tmp_path / "python3.14"
    broken.write_text("#!/bin/sh\nexit 127\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("COURSE_PYTHONS", str(broken))
    assert all(i.path != str(broken) for i in interpreters.find_interpreters())
    assert interpreters.describe(str(tmp_path / "missing")) is None


def test_the_sweep_in_every_other_real_interpreter_found():
    others = interpreters.find_interpreters()
    if not others:
        pytest.skip("no other Python 3.11+ on PATH or in COURSE_PYTHONS on this machine")
    for other in others:
        document = interpreters.run_sweep(other, threads=[1, 2], workloads=["python"], tasks=4,
                                          repeats=1, task_ms=2)
        assert document["interpreter"]["version"] == other.version


@pytest.mark.slow
def test_sweeps_and_summary_small():
    sweeps = gil.thread_sweeps(["python", "sha256"], [1, 2], budget_seconds=0.3)
    assert set(sweeps) == {"python", "sha256"}
    assert all(r.executor == "thread" for r in sweeps.values())
    rows = gil.summary("sha256", workers=2, task_seconds=0.005, repeats=1)
    assert [r.label for r in rows][:2] == ["serial", "2 threads"]
    assert rows[0].speedup == pytest.approx(1.0)


# --- the explanations, as on every kernel ---


def fake_sweep(workload, speedup, gil_enabled=True, workers=(1, 2)):
    """A ScalingResult whose speedup at the top worker count is ``speedup``."""
    from helpers.core.measure import Measurement
    from helpers.experiments.strong_scaling import ScalingResult

    measurements = [Measurement(experiment="scaling", executor="thread", workers=p,
                                workload=workload, task_seconds=0.01, tasks=8, repeat=0,
                                seconds=1.0 if p == 1 else 1.0 / speedup, start_method=None,
                                mode="quick", machine_id="fake")
                    for p in workers]
    return ScalingResult(workload=workload, executor="thread", start_method=None,
                         task_seconds=0.01, tasks=8, usable_cpus=max(workers),
                         measurements=measurements, gil_enabled=gil_enabled)


def test_the_sweep_explanation_follows_a_gil_on_run():
    text = gil.explain_sweeps({"python": fake_sweep("python", 1.02),
                               "sha256": fake_sweep("sha256", 1.9)}, 2)
    assert "**python**: 1.02× with 2 threads" in text and "**sha256**: 1.90×" in text
    assert "GIL on" in text and "cannot rise much above 1×" in text
    assert "`sha256` run their loops in C" in text


def test_the_sweep_explanation_follows_a_gil_off_run():
    """A free-threaded kernel's run: no sentence may say the python line stays near 1×."""
    text = gil.explain_sweeps({"python": fake_sweep("python", 1.8, gil_enabled=False),
                               "zlib": fake_sweep("zlib", 1.9, gil_enabled=False),
                               "numpy": fake_sweep("numpy", 0.9, gil_enabled=False)}, 2)
    assert "GIL **off**" in text and "here 1.80×" in text
    assert "cannot rise" not in text and "oversubscribe" in text


def test_the_sweep_explanation_on_one_cpu():
    text = gil.explain_sweeps({"python": fake_sweep("python", 1.0, workers=(1,))}, 1)
    assert "one CPU" in text and "GIL" not in text


@pytest.mark.parametrize(("gil_enabled", "workload", "expected"), [
    (True, "python", "at most about one CPU"),
    (False, "python", "GIL **off**"),
    (True, "sha256", "releases the GIL"),
])
def test_the_cpu_use_explanation_follows_the_recorded_gil_state(gil_enabled, workload,
                                                                 expected):
    threads = gil.CpuUse("thread", 2, workload, [(0.0, 1.0), (0.1, 1.9)], gil_enabled)
    processes = gil.CpuUse("process", 2, workload, [(0.0, 2.0)], gil_enabled)
    text = gil.explain_cpu_use(threads, processes)
    assert expected in text and "**1.4** CPUs" in text and "**2.0**" in text


def test_runs_record_the_gil_state_they_ran_with(monkeypatch):
    """Read when the experiment runs, not once at import: an extension can switch it on."""
    from helpers.experiments import strong_scaling

    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    result = strong_scaling.run_scaling([1], workload="python", executor="thread",
                                        task_seconds=0.002, repeats=1, budget_seconds=0.05,
                                        progress=False)
    assert result.gil_enabled is False
