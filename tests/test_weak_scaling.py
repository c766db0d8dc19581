"""Weak scaling: the job grows with the workers (Gustafson), and its explanation."""

import pytest

from helpers.experiments import weak_scaling


def test_the_job_grows_with_the_workers_and_every_repeat_is_kept():
    result = weak_scaling.run_weak_scaling([1, 2], task_seconds=0.005, tasks_per_worker=2,
                                           repeats=2)
    assert result.workers == [1, 2] and all(len(v) == 2 for v in result.seconds.values())
    assert result.efficiency()[1].median == pytest.approx(1.0)
    assert result.scaled_speedup()[1].median == pytest.approx(1.0)
    assert "Scaled speedup (Gustafson)" in weak_scaling.explain_weak_scaling(result)


def fake(seconds, usable=2, executor="process", gil_enabled=True):
    return weak_scaling.WeakScalingResult("python", executor, "fork", 0.05, 4, usable,
                                          seconds, gil_enabled=gil_enabled)


def test_scaled_speedup_is_p_times_the_time_ratio():
    result = fake({1: [1.0, 1.0], 2: [1.0, 1.25]})
    assert result.scaled_speedup()[2].median == pytest.approx(1.8)
    assert result.efficiency()[2].low == pytest.approx(0.8)


@pytest.mark.parametrize(("seconds", "usable", "expected"), [
    ({1: [1.0, 1.0], 2: [1.02, 1.05]}, 2, "about as long as the small one"),
    ({1: [1.0, 1.0], 2: [1.4, 1.45]}, 2, "noticeably longer"),
    ({1: [1.0, 1.0]}, 1, "one usable CPU"),
])
def test_the_explanation_follows_the_numbers(seconds, usable, expected):
    assert expected in weak_scaling.explain_weak_scaling(fake(seconds, usable))


def test_threads_with_the_gil_on_and_off():
    text = weak_scaling.explain_weak_scaling(fake({1: [1.0], 2: [2.0]}, executor="thread"))
    assert "GIL on" in text
    text = weak_scaling.explain_weak_scaling(fake({1: [1.0], 2: [1.0]}, executor="thread",
                                                  gil_enabled=False))
    assert "GIL" not in text


def test_bad_parameters_say_what_is_allowed():
    with pytest.raises(ValueError, match="tasks_per_worker=0"):
        weak_scaling.run_weak_scaling([1], tasks_per_worker=0)
    with pytest.raises(ValueError, match="executor 'gpu'"):
        weak_scaling.run_weak_scaling([1], executor="gpu")
