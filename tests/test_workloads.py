
import pytest

from helpers.core import workloads

AVAILABLE = [name for name, w in workloads.WORKLOADS.items() if w.available()]


@pytest.mark.parametrize("name", AVAILABLE)
def test_each_workload_runs_and_calibrates(name):
    calibration = workloads.calibrate(name, budget_seconds=0.1)
    assert calibration.seconds_per_unit > 0
    units = calibration.units_for(0.005)
    assert units >= 1
    workloads.get(name).function(units)


def test_same_input_gives_same_output():
    assert workloads.sha256_blocks(3) == workloads.sha256_blocks(3)
    assert workloads.python_loop(2) == workloads.python_loop(2)


def test_unknown_workload_lists_the_names():
    with pytest.raises(ValueError, match="choose one of: python, sha256"):
        workloads.get("fortran")


def test_bad_budget_and_bad_duration_are_refused():
    with pytest.raises(ValueError, match="budget_seconds"):
        workloads.calibrate("python", budget_seconds=0)
    with pytest.raises(ValueError, match="positive"):
        workloads.calibrate("sleep").units_for(-1)


def test_pillow_and_numpy_are_available_here():
    """The course installs both; if this fails, the environment is broken."""
    assert {"pillow", "numpy"} <= set(AVAILABLE)
