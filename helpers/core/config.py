"""The two environment variables every experiment honours.

``COURSE_START_METHOD``
    ``fork``, ``forkserver`` or ``spawn``: the start method experiments use when
    they don't choose one. Experiments that *compare* start methods name them
    explicitly and ignore it.
``COURSE_QUICK``
    ``1`` shrinks every experiment's time budget (CI, live demos). Results record
    which mode produced them.

Standard library only: worker processes may import this module.
"""

from __future__ import annotations

import multiprocessing
import os

START_METHOD_VARIABLE = "COURSE_START_METHOD"
QUICK_VARIABLE = "COURSE_QUICK"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def start_method() -> str:
    """The start method experiments use by default.

    ``COURSE_START_METHOD`` when set, otherwise this platform's default
    (fork on Linux before Python 3.14, forkserver from 3.14, spawn on macOS and Windows).
    """
    allowed = multiprocessing.get_all_start_methods()
    chosen = os.environ.get(START_METHOD_VARIABLE, "").strip().lower()
    if not chosen:
        return multiprocessing.get_start_method()
    if chosen not in allowed:
        raise ValueError(
            f"{START_METHOD_VARIABLE}={chosen!r} is not a start method this platform has; "
            f"allowed: {', '.join(allowed)} (or leave it unset for the default)."
        )
    return chosen


def mp_context(method: str | None = None) -> multiprocessing.context.BaseContext:
    """A multiprocessing context for ``method``, or for :func:`start_method` when None."""
    return multiprocessing.get_context(method or start_method())


def quick_mode() -> bool:
    """True when ``COURSE_QUICK`` asks for short experiments."""
    value = os.environ.get(QUICK_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{QUICK_VARIABLE}={value!r} is not understood; use 1 (quick) or 0 (full)."
    )


def mode() -> str:
    """``"quick"`` or ``"full"``, as recorded in results."""
    return "quick" if quick_mode() else "full"


def budget(full_seconds: float, quick_seconds: float) -> float:
    """Pick a time budget for the current mode."""
    return quick_seconds if quick_mode() else full_seconds

#: The Jupyter kernel ``make setup`` registers and the notebooks ask for.
KERNEL_NAME = "scaling-cpu-python"
KERNEL_DISPLAY_NAME = "Python (scaling CPU-bound course)"
