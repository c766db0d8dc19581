"""The dashboard's callback, driven headlessly: set values, click, read the output."""

import sys

import pytest

from helpers.experiments import strong_scaling
from helpers.view import widgets


def outputs_text(dashboard):
    return " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in
                    dashboard.output.outputs)


@pytest.fixture
def dashboard(quick):
    def small(**arguments):
        arguments.update(repeats=1, budget_seconds=0.3)
        return strong_scaling.run_scaling(**arguments)

    return widgets.ScalingDashboard(run=small)


def test_a_click_runs_the_experiment_and_draws(dashboard):
    dashboard.workers.value = 2
    dashboard.task_ms.value = 5
    dashboard.button.click()
    assert dashboard.wait(timeout=60)
    assert dashboard.result is not None
    assert dashboard.result.workers == [1, 2]
    kinds = [next(iter(o["data"])) for o in dashboard.output.outputs]
    assert kinds.count("image/png") == 2
    assert dashboard.status.value.startswith("done")


def test_a_bad_value_gives_a_message_not_a_traceback(dashboard):
    dashboard.task_ms.value = 0
    dashboard.button.click()
    assert dashboard.wait(timeout=5)
    assert dashboard.runs_started == 0
    text = outputs_text(dashboard)
    assert "out of range" in text and "1 to 2000 ms" in text
    assert "Traceback" not in text


def test_a_second_click_during_a_run_does_not_start_another(dashboard):
    dashboard.workers.value = 1
    dashboard.task_ms.value = 20
    dashboard.button.click()
    dashboard.button.click()
    assert "already going" in dashboard.status.value
    assert dashboard.wait(timeout=60)
    assert dashboard.runs_started == 1


def test_a_failing_run_is_reported_in_the_output():
    def broken(**_):
        raise RuntimeError("the pool broke")

    dashboard = widgets.ScalingDashboard(run=broken)
    dashboard.button.click()
    assert dashboard.wait(timeout=5)
    assert "the pool broke" in outputs_text(dashboard)
    assert dashboard.status.value == "failed"


def test_workers_slider_goes_to_twice_the_usable_cpus(dashboard):
    assert dashboard.workers.max == 2 * dashboard.usable


# --- the pool dashboard (notebook 05) ---


@pytest.fixture
def pool_dashboard():
    return widgets.PoolDashboard()


def test_pool_dashboard_draws_a_timeline(pool_dashboard):
    pool_dashboard.pool.value = "ProcessPoolExecutor"
    pool_dashboard.tasks.value = 40
    pool_dashboard.task_ms.value = 1
    pool_dashboard.chunksize.value = 4
    pool_dashboard.button.click()
    assert pool_dashboard.wait(timeout=60)
    result = pool_dashboard.result
    assert result.pool == "ProcessPoolExecutor" and len(result.records) == 40
    assert "went to overhead" in outputs_text(pool_dashboard)


@pytest.mark.parametrize(("control", "value", "message"), [
    ("chunksize", 0, "chunksize 0 is out of range"),
    ("tasks", 100000, "number of tasks 100000 is out of range"),
    ("task_ms", -1, "task size -1 ms is out of range"),
])
def test_pool_dashboard_bad_values(pool_dashboard, control, value, message):
    getattr(pool_dashboard, control).value = value
    pool_dashboard.button.click()
    assert pool_dashboard.runs_started == 0
    assert message in outputs_text(pool_dashboard)


# --- the event-loop dashboard (notebook 01) ---


def test_loop_dashboard_draws_a_lag_timeline():
    dashboard = widgets.LoopDashboard()
    dashboard.strategy.value = "WorkerPool"
    dashboard.task_ms.value = 50
    dashboard.cpu_tasks.value = 1
    dashboard.switch_ms.value = 2.0
    before = sys.getswitchinterval()
    dashboard.button.click()
    assert dashboard.wait(timeout=60)
    assert dashboard.result.strategy == "WorkerPool"
    assert dashboard.result.switch_interval == pytest.approx(0.002)
    assert sys.getswitchinterval() == before, "the run did not put the switch interval back"
    assert "image/png" in dashboard.output.outputs[0]["data"]
    assert "**WorkerPool**" in str(dashboard.output.outputs[1]["data"])


@pytest.mark.parametrize(("control", "value", "message"), [
    ("task_ms", 0, "CPU task size 0 ms is out of range"),
    ("switch_ms", 0, "switch interval 0 ms is out of range"),
])
def test_loop_dashboard_bad_value(control, value, message):
    dashboard = widgets.LoopDashboard()
    getattr(dashboard, control).value = value
    dashboard.button.click()
    assert dashboard.runs_started == 0
    assert message in outputs_text(dashboard)


@pytest.mark.slow
def test_thread_dashboard_draws_speedup_and_cpu_use():
    dashboard = widgets.ThreadDashboard()
    dashboard.workload.value = "sha256"
    dashboard.threads.value = 2
    dashboard.button.click()
    assert dashboard.wait(timeout=120)
    scaling, cpu = dashboard.result
    assert scaling.executor == "thread" and cpu[0].executor == "thread"
    assert [next(iter(o["data"])) for o in dashboard.output.outputs] == ["image/png"] * 2


# --- notebook 06's dashboard ---


def test_cluster_dashboard_runs_a_load_and_rejects_bad_values():
    board = widgets.cluster_dashboard()
    board.seconds.value = 0.5
    board.ms.value = 2
    board.button.click()
    assert board.wait(timeout=60)
    rows, result = board.result
    assert rows[0]["server"] == "PreforkServer" and result.ok > 0
    kinds = [next(iter(o["data"])) for o in board.output.outputs]
    assert "image/png" in kinds and board.status.value.startswith("done")
    board.ms.value = 5000
    board.button.click()
    assert board.wait(timeout=5) and board.runs_started == 1
    assert "ms per request 5000 ms is out of range" in outputs_text(board)


# --- notebooks 03 and 07 ---


def test_chunk_dashboard_runs_and_rejects_bad_values():
    board = widgets.chunk_dashboard()
    board.task_ms.value = 1
    board.chunksize.value = 8
    board.button.click()
    assert board.wait(timeout=60)
    assert board.result.chunksize == 8 and board.result.speedup > 0
    assert board.status.value.startswith("done")
    import ipywidgets

    board.task_ms = ipywidgets.FloatText(value=1000)  # sliders clamp; a text box would not
    board.button.click()
    assert board.wait(timeout=5)
    assert board.runs_started == 1 and "out of range" in outputs_text(board)


def test_transfer_dashboard_measures_one_size():
    board = widgets.transfer_dashboard()
    board.megabytes.value = 1
    board.method.value = "shared memory"
    board.button.click()
    assert board.wait(timeout=60)
    methods = {r["method"] for r in board.result}
    assert methods == {"shared memory", "thread (no copy)"}
    assert "MiB/s" in outputs_text(board)


# --- the joblib dashboard (notebook 04) ---


def test_joblib_dashboard_runs_one_configuration():
    dashboard = widgets.JoblibDashboard()
    dashboard.backend.value = "threading"
    dashboard.n_jobs.value = 2
    dashboard.batch_size.value = "10"
    dashboard.task_ms.value = 1.0
    dashboard.tasks.value = 40
    dashboard.button.click()
    assert dashboard.wait(timeout=120)
    assert dashboard.result["backend"] == "threading" and dashboard.result["batch_size"] == 10
    assert "image/png" in dashboard.output.outputs[0]["data"]
    assert "**threading**" in str(dashboard.output.outputs[1]["data"])


@pytest.mark.parametrize(("control", "value", "message"), [
    ("task_ms", 0, "task size 0 ms is out of range"),
    ("tasks", 100_000, "more than 20 s of serial work"),
])
def test_joblib_dashboard_bad_value(control, value, message):
    dashboard = widgets.JoblibDashboard()
    getattr(dashboard, control).value = value
    dashboard.button.click()
    assert dashboard.runs_started == 0
    assert message in outputs_text(dashboard)


# --- the start-method dashboard (notebook 03) ---


def test_start_method_dashboard_measures_the_methods_chosen():
    dashboard = widgets.StartMethodDashboard()
    dashboard.methods.value = ("spawn",)
    dashboard.workers.value, dashboard.repeats.value = 1, 1
    dashboard.button.click()
    assert dashboard.wait(timeout=120)
    assert [row["method"] for row in dashboard.result] == ["spawn"]
    assert "image/png" in dashboard.output.outputs[0]["data"]
    assert "**spawn**: first result after" in outputs_text(dashboard)


def test_start_method_dashboard_needs_a_method():
    dashboard = widgets.StartMethodDashboard()
    dashboard.methods.value = ()
    dashboard.button.click()
    assert dashboard.runs_started == 0
    assert "choose at least one start method" in outputs_text(dashboard)


# --- the backpressure dashboard (notebook 08) ---


def test_backpressure_dashboard_runs_both_ways_with_the_chosen_bound():
    dashboard = widgets.BackpressureDashboard()
    dashboard.bound.value, dashboard.tasks.value, dashboard.payload_mib.value = 3, 30, 0.25
    dashboard.button.click()
    assert dashboard.wait(timeout=120)
    unbounded, bounded = dashboard.result
    assert unbounded["limit"] is None and bounded["limit"] == 3
    assert bounded["peak_unfinished"] <= 3
    assert "image/png" in dashboard.output.outputs[0]["data"]
    assert "Bounded by a semaphore of 3" in outputs_text(dashboard)


def test_backpressure_dashboard_refuses_too_much_payload():
    dashboard = widgets.BackpressureDashboard()
    dashboard.tasks.value, dashboard.payload_mib.value = 400, 8.0
    dashboard.button.click()
    assert dashboard.runs_started == 0
    assert "at most 512 MiB" in outputs_text(dashboard)


# --- the benchmark dashboard (notebook 10) ---


def test_benchmark_dashboard_runs_a_part_and_diagnoses_it():
    dashboard = widgets.BenchmarkDashboard()
    dashboard.parts.value = ["start-methods"]
    dashboard.button.click()
    assert dashboard.wait(timeout=120)
    assert {r["experiment"] for r in dashboard.result["records"]} == {"first-result"}
    assert "start-methods" in str(dashboard.output.outputs[1]["data"])


def test_benchmark_dashboard_reads_a_colleagues_file():
    from helpers.core import paths

    reference = paths.REPO_ROOT / "data" / "reference" / "course-16cpu-intel-xeon-quick.json"
    dashboard = widgets.BenchmarkDashboard()
    dashboard.path.value = str(reference)
    dashboard.button.click()
    assert dashboard.wait(timeout=60)
    text = str(dashboard.output.outputs[0]["data"])
    assert "Intel" in text and "Too few tasks per worker" in text
    assert "predates them" in str(dashboard.output.outputs[1]["data"])


@pytest.mark.parametrize(("path", "parts", "message"), [
    ("/nonexistent.json", ["scaling"], "there is no file"),
    ("", [], "choose at least one part"),
])
def test_benchmark_dashboard_bad_value(path, parts, message):
    dashboard = widgets.BenchmarkDashboard()
    dashboard.path.value = path
    dashboard.parts.value = parts
    dashboard.button.click()
    assert dashboard.runs_started == 0
    assert message in outputs_text(dashboard)
