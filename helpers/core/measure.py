"""Repeated timing, medians and spread, speedup, and the Amdahl and Karp–Flatt models.

One timed run is one :class:`Measurement`. Experiments repeat every configuration,
*interleaved* (A B C, B C A, C A B …) so that a slow minute on a shared machine hits
every configuration rather than one, and report the median with the full spread.

Amdahl's law: with a serial fraction ``f``, ``p`` workers give a speedup of
``1 / (f + (1 - f) / p)``. Rearranged, every measured speedup ``S`` at ``p`` gives one
estimate of ``f``, the Karp–Flatt metric ``(1/S - 1/p) / (1 - 1/p)``. A fit from one
or two worker counts cannot tell Amdahl's curve from any other; :func:`fit_amdahl`
says so instead of pretending.

Results are plain data and serialise to JSON with a schema version (see
:func:`save_results`); files in ``data/`` use the same format.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 1
#: Fewest distinct worker counts above one for a fit to be called reliable.
RELIABLE_FIT_POINTS = 3

Config = TypeVar("Config")


@dataclass(frozen=True)
class Measurement:
    """One timed run of one configuration."""

    experiment: str
    executor: str
    workers: int
    workload: str
    task_seconds: float
    tasks: int
    repeat: int
    seconds: float
    start_method: str | None
    mode: str
    machine_id: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Spread:
    """The median of repeated values and their full range."""

    median: float
    low: float
    high: float
    count: int

    @property
    def relative_spread(self) -> float:
        """(high - low) / median: how far apart the repeats landed."""
        return (self.high - self.low) / self.median if self.median else float("inf")


def spread(values: Iterable[float]) -> Spread:
    """Median, minimum and maximum of ``values``."""
    values = list(values)
    if not values:
        raise ValueError("spread() needs at least one value")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn()`` and return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(configs: Sequence[Config], repeats: int) -> Iterator[tuple[int, Config]]:
    """Yield ``(repeat, config)`` pairs, rotating the order on every repeat."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    configs = list(configs)
    for repeat in range(repeats):
        shift = repeat % len(configs) if configs else 0
        for config in configs[shift:] + configs[:shift]:
            yield repeat, config


# --- speedup and efficiency ---


def paired_speedups(seconds: Iterable[tuple[Any, Any, float]], baseline: Any
                    ) -> dict[Any, list[float]]:
    """For ``(repeat, label, seconds)`` triples: each label's speedup over ``baseline``
    in the same repeat, one value per repeat.

    Pairing runs by repeat keeps slow moments of the machine from counting twice: a
    repeat that was slow for every label gives the same ratios as a fast one. The
    experiments' speedups over repeated runs (scaling sweeps, "ways" compared side by
    side, interpreter sweeps) are computed here.
    """
    by_repeat: dict[Any, dict[Any, float]] = defaultdict(dict)
    for repeat, label, value in seconds:
        by_repeat[repeat][label] = value
    result: dict[Any, list[float]] = defaultdict(list)
    for runs in by_repeat.values():
        if baseline not in runs:
            continue
        for label, value in runs.items():
            result[label].append(runs[baseline] / value)
    if not result:
        raise ValueError(f"no {baseline!r} runs to use as the baseline")
    return dict(result)


def speedups(measurements: Iterable[Measurement]) -> dict[int, list[float]]:
    """Per worker count, the speedup of each repeat over the one-worker run of that repeat."""
    triples = [(m.repeat, m.workers, m.seconds) for m in measurements]
    try:
        return dict(sorted(paired_speedups(triples, baseline=1).items()))
    except ValueError:
        raise ValueError("speedups need one-worker runs as the baseline") from None


def speedups_over(rows: Iterable[dict[str, Any]], baseline: str,
                  key: str = "way") -> dict[str, Spread]:
    """For rows ``{key, repeat, seconds}``: each way's speedup over ``baseline`` in the same
    repeat, as median and range."""
    triples = [(r["repeat"], r[key], r["seconds"]) for r in rows]
    return {way: spread(values) for way, values in paired_speedups(triples, baseline).items()}


def percentile(values: Iterable[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by nearest rank; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def efficiency(speedup: float, workers: int) -> float:
    """Speedup per worker: 1.0 is perfect scaling."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    return speedup / workers


# --- models ---


def amdahl_speedup(workers: float, serial_fraction: float) -> float:
    """Amdahl's law: the speedup ``workers`` give when ``serial_fraction`` cannot be split."""
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / workers)


def karp_flatt(speedup: float, workers: int) -> float:
    """The serial fraction implied by one measured speedup (Karp–Flatt metric)."""
    if workers < 2:
        raise ValueError("the Karp–Flatt metric needs at least two workers")
    return (1.0 / speedup - 1.0 / workers) / (1.0 - 1.0 / workers)


@dataclass(frozen=True)
class AmdahlFit:
    """A fitted serial fraction, its range over the repeats, and how far to trust it."""

    serial_fraction: float
    low: float
    high: float
    parallel_points: int
    observations: int
    reliable: bool
    note: str = field(default="")

    def predict(self, workers: float) -> tuple[float, float, float]:
        """(predicted speedup, pessimistic, optimistic) at ``workers``."""
        return (
            amdahl_speedup(workers, self.serial_fraction),
            amdahl_speedup(workers, self.high),
            amdahl_speedup(workers, self.low),
        )


def fit_amdahl(points: Iterable[tuple[int, float]]) -> AmdahlFit:
    """Fit Amdahl's serial fraction to ``(workers, speedup)`` observations.

    Least squares on the linearised law ``1/S - 1/p = f (1 - 1/p)``; the range
    comes from the Karp–Flatt value of each observation. Raises ``ValueError`` with
    no observation above one worker; flags the fit as unreliable with fewer than
    ``RELIABLE_FIT_POINTS`` distinct worker counts above one.
    """
    parallel = [(p, s) for p, s in points if p > 1 and s > 0]
    if not parallel:
        raise ValueError(
            "Amdahl's law cannot be fitted without a run on more than one worker "
            "(a 1-CPU machine cannot show parallel speedup; see the reference machines)."
        )
    xs = [1 - 1 / p for p, _ in parallel]
    ys = [1 / s - 1 / p for p, s in parallel]
    fraction = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    estimates = [karp_flatt(s, p) for p, s in parallel]
    distinct = len({p for p, _ in parallel})
    reliable = distinct >= RELIABLE_FIT_POINTS

    def clip(f: float) -> float:
        return min(1.0, max(0.0, f))

    note = "" if reliable else (
        f"Only {distinct} worker count{'s' if distinct > 1 else ''} above one: any curve "
        "through so few points fits. Read this as a model, not a measurement."
    )
    return AmdahlFit(
        serial_fraction=clip(fraction),
        low=clip(min(estimates)),
        high=clip(max(estimates)),
        parallel_points=distinct,
        observations=len(parallel),
        reliable=reliable,
        note=note,
    )


# --- results on disk ---


def result_document(
    kind: str, measurements: Iterable[Measurement], machine: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """The JSON-ready document for one experiment's results."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "records": [m.as_dict() for m in measurements],
        **extra,
    }


def save_results(path: Path | str, document: dict[str, Any]) -> Path:
    """Write a result document as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return path


def load_results(path: Path | str) -> tuple[dict[str, Any], list[Measurement]]:
    """Read a result document; returns (document, measurements). Checks the schema version."""
    document = json.loads(Path(path).read_text())
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {version!r}, this course reads version {SCHEMA_VERSION}"
        )
    return document, records_of(document)


def records_of(document: dict[str, Any]) -> list[Measurement]:
    """The measurements in a result document (fields this version does not know are ignored)."""
    names = {f.name for f in fields(Measurement)}
    return [Measurement(**{k: v for k, v in r.items() if k in names})
            for r in document.get("records", [])]
