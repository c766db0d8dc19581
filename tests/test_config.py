import multiprocessing

import pytest

from helpers.core import config


def test_start_method_defaults_to_the_platform(monkeypatch):
    monkeypatch.delenv("COURSE_START_METHOD", raising=False)
    assert config.start_method() == multiprocessing.get_start_method()


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_start_method_from_the_environment(monkeypatch, method):
    monkeypatch.setenv("COURSE_START_METHOD", method.upper())
    assert config.start_method() == method
    assert config.mp_context().get_start_method() == method


def test_bad_start_method_names_the_allowed_ones(monkeypatch):
    monkeypatch.setenv("COURSE_START_METHOD", "thread")
    with pytest.raises(ValueError, match="allowed: .*spawn"):
        config.start_method()


@pytest.mark.parametrize(("value", "quick"), [("1", True), ("yes", True), ("0", False),
                                              ("", False)])
def test_quick_mode(monkeypatch, value, quick):
    monkeypatch.setenv("COURSE_QUICK", value)
    assert config.quick_mode() is quick
    assert config.mode() == ("quick" if quick else "full")
    assert config.budget(10, 1) == (1 if quick else 10)


def test_bad_quick_value_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="use 1 .* or 0"):
        config.quick_mode()
