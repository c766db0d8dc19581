"""Checks for parameters: a bad value gets an error that says what is wrong and what is allowed."""

from __future__ import annotations

from typing import Any

#: The most workers a server of the course starts (a typo such as 4000 fails at once).
MAX_SERVER_WORKERS = 256


def whole_number(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` itself, if it is a whole number from ``low`` to ``high`` (no upper limit
    when ``high`` is None); otherwise a ValueError naming ``name`` and the allowed range.
    ``True`` and ``2.0`` are not whole numbers here."""
    ok = (isinstance(value, int) and not isinstance(value, bool) and value >= low
          and (high is None or value <= high))
    if not ok:
        if high is not None:
            allowed = f"a whole number from {low} to {high}"
        elif low == 1:
            allowed = "a positive whole number"
        else:
            allowed = f"a whole number from {low} up"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def number(name: str, value: Any, low: float, high: float) -> float:
    """``value`` itself, if it is a real number (an int or a float, not a bool, not NaN)
    from ``low`` to ``high``; otherwise a ValueError naming ``name`` and the allowed range."""
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and low <= value <= high)  # NaN fails both comparisons
    if not ok:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return value
