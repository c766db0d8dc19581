"""Exercise 10.3's harness: run a learner's side-by-side timing loop on known configurations.

The course measures every comparison *interleaved*: A B C, then B C A, then C A B, so a
slow minute on a shared machine hits every configuration alike (``helpers.core.measure``).
The learner writes that loop themselves; this module hands it three configurations whose
cost is known, because each one times itself from the inside, and records the order they
were called in. Whatever the learner's clock says must then be at least what the
configuration measured of itself: a median below that belongs to another configuration,
or to another clock.

    learner's fn(configurations, repeats)
        ├── calls  "none", "short", "long"  (each sleeps, timing itself, and logs its name)
        └── returns {name: (median, fastest, slowest)}
    check_side_by_side  ->  SideBySideRun(calls, own_seconds, returned, error)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.experiments import learner_code

#: Each configuration's sleep, in seconds: different enough to tell apart on a busy machine.
CONFIGURATION_SECONDS = {"none": 0.0, "short": 0.005, "long": 0.02}


@dataclass
class SideBySideRun:
    """What the learner's timing loop did with the configurations it was given."""

    repeats: int
    calls: list[str] = field(default_factory=list)  # the order the configurations ran in
    own_seconds: dict[str, list[float]] = field(default_factory=dict)  # measured inside
    returned: Any = None
    error: BaseException | None = None

    @property
    def names(self) -> list[str]:
        return list(CONFIGURATION_SECONDS)

    def rounds(self) -> list[list[str]]:
        """The calls cut into rounds of one call per configuration."""
        size = len(self.names)
        return [self.calls[i:i + size] for i in range(0, len(self.calls), size)]


class _Stopped(Exception):
    """Raised by a configuration once the checker has given up waiting."""


def check_side_by_side(fn: Callable[[dict[str, Callable[[], None]], int], Any],
                       repeats: int = 5, time_limit: float = 10.0) -> SideBySideRun:
    """Run ``fn(configurations, repeats)`` on a thread, at most ``time_limit`` seconds.

    Raises TimeoutError if it has not returned by then; from that moment every
    configuration raises when called, so a loop that keeps calling them stops.
    """
    run = SideBySideRun(repeats, own_seconds={name: [] for name in CONFIGURATION_SECONDS})
    lock, stopped = threading.Lock(), threading.Event()

    def configuration(name: str) -> Callable[[], None]:
        def call() -> None:
            if stopped.is_set():
                raise _Stopped("the checker stopped waiting for this loop")
            start = time.perf_counter()
            time.sleep(CONFIGURATION_SECONDS[name])
            elapsed = time.perf_counter() - start
            with lock:
                run.calls.append(name)
                run.own_seconds[name].append(elapsed)
        return call

    configurations = {name: configuration(name) for name in CONFIGURATION_SECONDS}

    def target() -> None:
        run.returned = fn(configurations, repeats)

    try:
        run.error = learner_code.run_with_time_limit(target, time_limit, name="exercise-10.3",
                                                     what="the timing loop")
    except TimeoutError:
        stopped.set()  # its next call raises, so a loop that keeps calling ends
        raise
    return run
