"""What the hardware, and whoever shares it, does to a speedup.

Four common reasons a learner's speedup disappoints, none of them in ``os.cpu_count()``:

    topology()          SMT: are two "CPUs" two hyper-threads of one physical core?
    hybrid_cores()      performance and efficiency cores (where Linux names them)
    clock()             the clock now, and its range: a laptop slows down when every core works
    ConditionsMonitor   during one run: clock samples, steal time (a VM waiting for its host),
                        CPU used by other programs, cgroup throttling (a quota ran out)
                        ──> Conditions, a plain record the benchmark stores per part

Everything is read without privileges from what the OS exposes (Linux: ``/sys`` and
``/proc``; psutil, where installed, elsewhere). A reader that cannot tell returns None,
which means *unknown*, never "no". Paths are relative to ``root`` so tests can build fake
trees. Standard library only (psutil is optional).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# --- topology: logical CPUs, physical cores, siblings ---


def parse_cpu_list(text: str) -> set[int]:
    """CPU numbers from the kernel's list format: ``"0-3,8,10-11"``."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def sibling_groups(root: Path | str = "/") -> list[frozenset[int]] | None:
    """The sets of logical CPUs that share one physical core (Linux), or None if unknown."""
    base = Path(root) / "sys/devices/system/cpu"
    groups = set()
    for topology in sorted(base.glob("cpu[0-9]*/topology")):
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                groups.add(frozenset(parse_cpu_list((topology / name).read_text())))
                break
            except (OSError, ValueError):
                continue
    return sorted(groups, key=min) or None


@dataclass(frozen=True)
class Topology:
    """Logical CPUs, physical cores, and whether the CPUs this process may use share cores."""

    logical_cpus: int
    physical_cores: int | None
    threads_per_core: int | None
    usable_share_cores: bool | None  # two usable CPUs are hyper-threads of one core
    source: str  # where it was read: "sysfs", "psutil" or "unknown"


def topology(root: Path | str = "/", usable: set[int] | None = None) -> Topology:
    """SMT as this OS shows it. A VM may hide that its vCPUs are siblings on the host:
    then this says one thread per core, and only a measurement can tell."""
    logical = os.cpu_count() or 1
    if usable is None and hasattr(os, "sched_getaffinity"):
        usable = set(os.sched_getaffinity(0))
    groups = sibling_groups(root)
    if groups:
        shared = None if usable is None else any(len(g & usable) > 1 for g in groups)
        return Topology(logical, len(groups), max(len(g) for g in groups), shared, "sysfs")
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    if physical:
        per_core = max(1, round(logical / physical))
        return Topology(logical, physical, per_core, None if per_core > 1 else False, "psutil")
    return Topology(logical, None, None, None, "unknown")


def hybrid_cores(root: Path | str = "/") -> dict[str, int] | None:
    """{"performance": n, "efficiency": m} on Linux hybrid CPUs (Intel P/E cores), else None."""
    base = Path(root) / "sys/devices"
    counts = {}
    for kind, folder in (("performance", "cpu_core"), ("efficiency", "cpu_atom")):
        try:
            counts[kind] = len(parse_cpu_list((base / folder / "cpus").read_text()))
        except (OSError, ValueError):
            continue
    return counts if len(counts) == 2 else None


# --- the clock ---


@dataclass(frozen=True)
class Clock:
    """Frequencies in MHz (the mean over CPUs); None where the OS does not say."""

    current_mhz: float | None
    min_mhz: float | None
    max_mhz: float | None


def _mean_khz_as_mhz(paths: list[Path]) -> float | None:
    values = []
    for path in paths:
        try:
            values.append(int(path.read_text()) / 1000)
        except (OSError, ValueError):
            continue
    return sum(values) / len(values) if values else None


def clock(root: Path | str = "/") -> Clock:
    """The clock: cpufreq in /sys, else /proc/cpuinfo's "cpu MHz", else psutil."""
    base = Path(root) / "sys/devices/system/cpu"
    freq = sorted(base.glob("cpu[0-9]*/cpufreq"))
    current = _mean_khz_as_mhz([f / "scaling_cur_freq" for f in freq])
    low = _mean_khz_as_mhz([f / "cpuinfo_min_freq" for f in freq])
    high = _mean_khz_as_mhz([f / "cpuinfo_max_freq" for f in freq])
    if current is None:
        current = _cpuinfo_mhz(Path(root))
    if current is None and Path(root) == Path("/"):
        try:
            import psutil

            reading = psutil.cpu_freq()
        except (ImportError, NotImplementedError, OSError):
            reading = None
        if reading is not None:
            current = reading.current or None
            low, high = low or reading.min or None, high or reading.max or None
    return Clock(current, low, high)


def _cpuinfo_mhz(root: Path) -> float | None:
    try:
        lines = (root / "proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return None
    values = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                values.append(float(value))
            except ValueError:
                continue
    return sum(values) / len(values) if values else None


# --- what else runs: the machine's CPU time, steal, throttling ---


@dataclass(frozen=True)
class CpuTimes:
    """The whole machine's CPU seconds since boot (/proc/stat), all CPUs together."""

    busy: float
    idle: float
    steal: float

    @property
    def total(self) -> float:
        return self.busy + self.idle + self.steal


def cpu_times(root: Path | str = "/") -> CpuTimes | None:
    """Linux's /proc/stat "cpu" line, in seconds; None elsewhere."""
    try:
        first = (Path(root) / "proc/stat").read_text().splitlines()[0].split()
        ticks = [int(v) for v in first[1:]]
    except (OSError, IndexError, ValueError):
        return None
    if first[0] != "cpu" or len(ticks) < 4:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    user, nice, system, idle, *rest = ticks + [0] * 4
    iowait, irq, softirq, steal = rest[:4]
    return CpuTimes(busy=(user + nice + system + irq + softirq) / hz,
                    idle=(idle + iowait) / hz, steal=steal / hz)


@dataclass(frozen=True)
class Throttling:
    """The cgroup's CFS counters: periods, periods throttled, seconds throttled."""

    periods: int
    throttled_periods: int
    throttled_seconds: float


def throttling(root: Path | str = "/") -> Throttling | None:
    """This process's cgroup ``cpu.stat`` (v2, or v1's cpu controller); None if unreadable."""
    from helpers.core import machine  # the cgroup paths are the machine card's

    root = Path(root)
    v2, v1 = machine._cgroup_paths(root)
    candidates = []
    if v2 is not None:
        candidates.append((root / "sys/fs/cgroup" / v2.lstrip("/") / "cpu.stat", "v2"))
    if v1 is not None:
        for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
            candidates.append((root / "sys/fs/cgroup" / mount / v1.lstrip("/") / "cpu.stat",
                               "v1"))
    for path, version in candidates:
        try:
            stat = dict(line.split() for line in path.read_text().splitlines() if line.strip())
        except (OSError, ValueError):
            continue
        try:
            if version == "v2" and "throttled_usec" in stat:
                seconds = int(stat["throttled_usec"]) / 1e6
            elif "throttled_time" in stat:  # v1: nanoseconds
                seconds = int(stat["throttled_time"]) / 1e9
            else:
                continue
            return Throttling(int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0)),
                              seconds)
        except ValueError:
            continue
    return None


def own_cpu_seconds() -> float:
    """CPU seconds of this process's whole family: itself, the children it has waited for,
    and (with psutil) every descendant still alive, with the ones *they* waited for. A
    long-lived child such as multiprocessing's fork server or resource tracker, or a pool's
    worker, is this program's work, not another program's."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    try:
        import psutil
    except ImportError:
        return total
    try:
        family = psutil.Process().children(recursive=True)
    except psutil.Error:
        return total
    for process in family:
        try:
            cpu = process.cpu_times()
        except psutil.Error:  # it ended meanwhile: its parent's totals will carry it
            continue
        total += cpu.user + cpu.system + getattr(cpu, "children_user", 0.0) + \
            getattr(cpu, "children_system", 0.0)
    return total


# --- during a run ---


@dataclass
class Conditions:
    """What the machine did while one run was measured. None: the OS did not say."""

    wall_seconds: float
    clock_mhz: list[float] = field(default_factory=list)  # sampled during the run
    clock_max_mhz: float | None = None
    steal_share: float | None = None  # of all CPU time: a VM waiting for its host
    others_cpus: float | None = None  # CPUs' worth used by other programs, on average
    throttled_periods: int | None = None
    throttled_seconds: float | None = None
    load_average: float | None = None  # 1-minute, at the end

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conditions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def clock_drop(self) -> float | None:
        """How far the slowest clock sample fell below the fastest one (0.1: 10 %)."""
        if len(self.clock_mhz) < 2 or max(self.clock_mhz) <= 0:
            return None
        return 1 - min(self.clock_mhz) / max(self.clock_mhz)


class ConditionsMonitor:
    """``with ConditionsMonitor() as monitor: ...``, then ``monitor.conditions``.

    A thread in this process samples the clock every ``interval`` seconds (a file read:
    it costs microseconds); steal, other programs' CPU and throttling are the difference
    between the counters at the start and at the end.
    """

    def __init__(self, interval: float = 0.25, root: Path | str = "/") -> None:
        self.interval, self.root = interval, root
        self.conditions: Conditions | None = None
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ConditionsMonitor:
        self._start = (time.perf_counter(), cpu_times(self.root), throttling(self.root),
                       own_cpu_seconds())
        self._thread = threading.Thread(target=self._sample, name="conditions-monitor",
                                        daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            current = clock(self.root).current_mhz
            if current is not None:
                self._samples.append(round(current, 1))
            if self._stop.wait(self.interval):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        start_wall, start_times, start_throttle, start_own = self._start
        wall = time.perf_counter() - start_wall
        end_times, end_throttle = cpu_times(self.root), throttling(self.root)
        steal = others = None
        if start_times is not None and end_times is not None and wall > 0:
            total = end_times.total - start_times.total
            if total > 0:
                steal = (end_times.steal - start_times.steal) / total
            busy = end_times.busy - start_times.busy
            others = max(0.0, (busy - (own_cpu_seconds() - start_own)) / wall)
        periods = seconds = None
        if start_throttle is not None and end_throttle is not None:
            periods = end_throttle.throttled_periods - start_throttle.throttled_periods
            seconds = end_throttle.throttled_seconds - start_throttle.throttled_seconds
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self.conditions = Conditions(wall, list(self._samples), clock(self.root).max_mhz,
                                     steal, others, periods, seconds, load)
