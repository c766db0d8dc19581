import json

import pytest

from helpers.core import measure
from helpers.core.measure import Measurement


def record(workers, repeat, seconds):
    return Measurement("scaling", "process", workers, "python", 0.01, 8, repeat, seconds,
                       "fork", "quick", "test")


def test_spread():
    s = measure.spread([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.count) == (2.5, 1.0, 10.0, 4)
    with pytest.raises(ValueError):
        measure.spread([])


def test_interleaved_rotates_the_order():
    pairs = list(measure.interleaved(["a", "b", "c"], 3))
    assert [c for _, c in pairs] == list("abcbcacab")
    assert [r for r, _ in pairs] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="repeats"):
        list(measure.interleaved(["a"], 0))


def test_speedups_pair_runs_by_repeat():
    runs = [record(1, 0, 2.0), record(2, 0, 1.0), record(1, 1, 4.0), record(2, 1, 1.0)]
    assert measure.speedups(runs) == {1: [1.0, 1.0], 2: [2.0, 4.0]}
    with pytest.raises(ValueError, match="one-worker"):
        measure.speedups([record(2, 0, 1.0)])


def test_amdahl_fit_recovers_a_known_serial_fraction():
    points = [(p, measure.amdahl_speedup(p, 0.1)) for p in (1, 2, 4, 8, 16)]
    fit = measure.fit_amdahl(points)
    assert fit.serial_fraction == pytest.approx(0.1)
    assert fit.reliable and fit.parallel_points == 4 and fit.note == ""
    assert fit.predict(16)[0] == pytest.approx(measure.amdahl_speedup(16, 0.1))


def test_amdahl_fit_from_one_parallel_point_is_flagged():
    fit = measure.fit_amdahl([(1, 1.0), (2, 1.8), (2, 1.9)])
    assert not fit.reliable
    assert "model, not a measurement" in fit.note
    assert fit.low <= fit.serial_fraction <= fit.high
    best, pessimistic, optimistic = fit.predict(16)
    assert pessimistic <= best <= optimistic


def test_amdahl_fit_refuses_without_parallel_runs():
    with pytest.raises(ValueError, match="more than one worker"):
        measure.fit_amdahl([(1, 1.0)])


def test_karp_flatt():
    assert measure.karp_flatt(2.0, 2) == pytest.approx(0.0)
    assert measure.karp_flatt(measure.amdahl_speedup(8, 0.25), 8) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        measure.karp_flatt(1.0, 1)


def test_results_round_trip_through_json(tmp_path):
    runs = [record(1, 0, 2.0), record(2, 0, 1.1)]
    path = measure.save_results(tmp_path / "r.json",
                                measure.result_document("scaling", runs, {"machine_id": "x"}))
    document, loaded = measure.load_results(path)
    assert loaded == runs
    assert document["schema_version"] == measure.SCHEMA_VERSION
    document["schema_version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="schema version 99"):
        measure.load_results(path)


def test_every_speedup_is_paired_by_repeat():
    """A repeat that was slow for everyone (repeat 1 here) gives the same ratio as a fast one."""
    triples = [(0, "serial", 1.0), (0, "pool", 0.5), (1, "serial", 2.0), (1, "pool", 2.0)]
    assert measure.paired_speedups(triples, "serial") == {"serial": [1.0, 1.0],
                                                           "pool": [2.0, 1.0]}
    with pytest.raises(ValueError, match="baseline"):
        measure.paired_speedups(triples, "threads")


def test_the_interpreter_sweep_pairs_its_repeats():
    from helpers.experiments import interpreters

    document = {"results": {"thread": {"python": {"1": [1.0, 2.0], "2": [0.5, 2.0]}}}}
    two = interpreters.speedups(document)["python"][2]
    assert (two.median, two.low, two.high) == (1.5, 1.0, 2.0)  # unpaired would say 1.2
