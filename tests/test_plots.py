import pytest
from matplotlib.figure import Figure

from helpers.core.measure import Measurement, spread
from helpers.core.trace import TaskRecord
from helpers.experiments.strong_scaling import ScalingResult
from helpers.view import plots


def fake_result(seconds_by_workers, usable=2):
    measurements = [
        Measurement("scaling", "process", p, "python", 0.02, 8, repeat, seconds, "fork",
                    "quick", "test")
        for p, runs in seconds_by_workers.items() for repeat, seconds in enumerate(runs)
    ]
    traces = {2: [TaskRecord(i, f"pid {i % 2}", 0.0, i * 0.1, i * 0.1 + 0.09)
                  for i in range(4)]}
    return ScalingResult("python", "process", "fork", 0.02, 8, usable, measurements, traces)


def labels(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_scaling_plot_shows_spread_ideal_and_a_labelled_model():
    fig = plots.scaling_plot(fake_result({1: [1.0, 1.1, 1.0], 2: [0.55, 0.6, 0.52]}))
    assert isinstance(fig, Figure)
    text = " ".join(labels(fig))
    assert "ideal" in text and "min–max" in text
    assert "Amdahl model" in text and "1 parallel point" in text
    assert plots.to_png(fig).startswith(b"\x89PNG")


def test_scaling_plot_draws_reference_machines():
    reference = {"16-core reference": {1: spread([1.0]), 16: spread([12.0, 13.0])}}
    fig = plots.scaling_plot(fake_result({1: [1.0], 2: [0.5]}), references=reference)
    assert any("16-core reference" in label for label in labels(fig))


def test_scaling_plot_without_parallel_runs_has_no_model():
    fig = plots.scaling_plot(fake_result({1: [1.0, 1.0]}, usable=1))
    assert not any("Amdahl" in label for label in labels(fig))


def test_weak_scaling_plot_draws_gustafson_beside_amdahl():
    from helpers.experiments.weak_scaling import WeakScalingResult

    weak = WeakScalingResult("python", "process", "fork", 0.02, 4, 2,
                             {1: [1.0, 1.0], 2: [1.05, 1.1]})
    fig = plots.weak_scaling_plot(weak, fake_result({1: [1.0], 2: [0.6]}))
    text = " ".join(labels(fig))
    assert "weak: 4 tasks per worker" in text and "strong: one job of 8 tasks" in text
    assert "min–max" in text and plots.to_png(fig).startswith(b"\x89PNG")


def test_timeline_has_one_row_per_worker():
    fig = plots.timeline_plot(fake_result({1: [1.0]}).traces[2])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["pid 0", "pid 1"]
    with pytest.raises(ValueError, match="at least one"):
        plots.timeline_plot([])


def test_timeline_starts_at_the_first_submission():
    records = [TaskRecord(i, "pid 7", 1000.0, 1000.1 + i * 0.1, 1000.15 + i * 0.1)
               for i in range(3)]
    fig = plots.timeline_plot(records)
    low, high = fig.axes[0].get_xlim()
    assert low == 0 and high < 1


def test_lag_timeline_has_a_panel_per_run():
    from helpers.experiments.eventloop import LoopRun

    runs = [LoopRun(name, 2, 0.3, 0.2, 0.8, lag=[(0.1, 0.0), (0.8, 0.55)], answered=[0.1, 0.9])
            for name in ("inline", "WorkerPool")]
    fig = plots.lag_timeline_plot(runs)
    assert len(fig.axes) == 2
    assert "worst lag 550 ms" in fig.axes[0].get_title(loc="left")
    with pytest.raises(ValueError):
        plots.lag_timeline_plot([])
