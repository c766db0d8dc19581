"""The pool benchmark runs end to end and writes a result in the course's schema.

It checks that the benchmark works, not how fast anything is: speed is measured by
``python -m helpers.bench pool`` and reported, never asserted in a test.
"""

import json
import subprocess
import sys

import pytest

from helpers.core import measure


@pytest.mark.slow
def test_pool_benchmark_runs_and_writes_its_result(tmp_path):
    output = tmp_path / "pool.json"
    run = subprocess.run(
        [sys.executable, "-m", "helpers.bench", "pool", "--quick", "--repeats", "1",
         "--methods", "fork", "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "target tiny_vs_ProcessPoolExecutor" in run.stdout
    document, records = measure.load_results(output)
    assert document["kind"] == "pool-benchmark" and document["mode"] == "quick"
    assert document["machine"]["usable_cpus"] >= 1
    experiments = {r.experiment for r in records}
    assert experiments == {"tiny", "parent-cpu", "latency", "coarse", "first-result",
                           "map-auto"}
    summary = document["summary"]["fork"]
    assert set(summary["targets"]) >= {"tiny_vs_ProcessPoolExecutor", "map_auto_vs_joblib"}
    json.dumps(document)  # plain data all the way down


def test_bad_arguments_are_reported():
    run = subprocess.run([sys.executable, "-m", "helpers.bench", "pool", "--methods", "teleport"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "not available here" in run.stderr
