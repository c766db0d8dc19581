"""Exercise checkers.

Every exercise has a placeholder cell the learner edits (``answer = ...``) and a
check cell that calls a checker here. A checker never raises: it shows
"correct" or "not yet" with a hint and returns True or False, so notebooks run
clean under nbval and in handouts whatever the learner typed.

To write a checker, decorate a function that returns ``(ok, message)`` and may
raise :class:`NotYet` with a hint; the decorator handles the placeholder, display
and unexpected errors.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

from . import machine

PLACEHOLDER_HINT = (
    "Replace the `...` in the cell above with your answer, run it, then run this cell."
)


class NotYet(Exception):  # noqa: N818 (a learner-facing name, not an error)
    """Raised inside a checker: the answer is not right yet; the message is the hint."""


def report(correct: bool, message: str) -> bool:
    """Show the verdict (Markdown in a notebook, text elsewhere) and return ``correct``."""
    verdict = "✅ **Correct.**" if correct else "🔶 **Not yet.**"
    text = f"{verdict} {message}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return correct
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))
    return correct


def checker(fn: Callable[..., str]) -> Callable[..., bool]:
    """Turn ``fn(answer, ...) -> message`` (raising NotYet for hints) into a checker."""

    @functools.wraps(fn)
    def check(answer: Any, *args: Any, **kwargs: Any) -> bool:
        if answer is Ellipsis:
            return report(False, PLACEHOLDER_HINT)
        try:
            message = fn(answer, *args, **kwargs)
        except NotYet as hint:
            return report(False, str(hint))
        except Exception as error:  # a checker must never raise
            return report(False, f"Your answer could not be checked ({type(error).__name__}: "
                                 f"{error}). Check its type and try again.")
        return report(True, message)

    return check


def _number(answer: Any, what: str) -> float:
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise NotYet(f"{what} should be a number, but your answer is a "
                     f"{type(answer).__name__}: {answer!r}.")
    if math.isnan(answer):
        raise NotYet(f"{what} came out as NaN; check the calculation.")
    return float(answer)


# --- notebook 00 ---


@checker
def usable_cpus(answer: Any) -> str:
    """Exercise 00.1: how many worker processes should CPU-bound work use here?"""
    expected = machine.usable_cpus()
    value = _number(answer, "The worker count")
    if value == expected:
        return (f"This kernel may use {expected} CPU(s), so {expected} workers keep them all "
                "busy without making them take turns.")
    if value == (os.cpu_count() or 1):
        raise NotYet("`os.cpu_count()` counts the machine's CPUs, not the ones this process "
                     "may use: an affinity mask or a container quota can allow fewer. "
                     "Look at the card's *usable CPUs* row.")
    if value > expected:
        raise NotYet(f"{value:g} workers is more than this kernel can run at once: the extra "
                     "ones would only take turns. Which row of the machine card caps it?")
    raise NotYet(f"{value:g} workers would leave some usable CPUs idle. Look at the card's "
                 "*usable CPUs* row.")


@checker
def parallel_efficiency(answer: Any, result: Any) -> str:
    """Exercise 00.2: the parallel efficiency at the largest usable worker count."""
    top = max(p for p in result.workers if p <= result.usable_cpus)
    if top == 1:
        return "Only one worker was measured here, so efficiency is 1 by definition."
    speedup = result.speedups()[top].median
    expected = speedup / top
    value = _number(answer, "The efficiency")
    if abs(value - expected) <= 0.02:
        return (f"{top} workers gave {speedup:.2f}×, so each worker delivered "
                f"{expected:.0%} of a perfect share.")
    if abs(value - speedup) <= 0.02:
        raise NotYet("That is the speedup. Efficiency is speedup *per worker*: divide by the "
                     "number of workers.")
    if abs(value - 100 * expected) <= 2:
        raise NotYet("Close: write it as a fraction between 0 and 1 (0.9, not 90).")
    raise NotYet(f"Use the median speedup at {top} workers from `result.speedups()`, "
                 "and divide by the number of workers.")
