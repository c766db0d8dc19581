"""What this kernel can really use: the machine card.

``os.cpu_count()`` counts the CPUs of the *machine*. A process may be allowed far
fewer: the scheduler's affinity mask (``taskset``, ``os.sched_setaffinity``) and the
container's cgroup CPU quota (Docker ``--cpus``, Kubernetes CPU limits) both cap it.
:func:`usable_cpus` takes the smallest of them, and that is the worker count the
course uses by default.

cgroup files read (paths relative to ``root``, so tests can build fake trees):

* v2: ``/proc/self/cgroup`` has ``0::/some/path``; the quota is
  ``/sys/fs/cgroup/some/path/cpu.max``, "QUOTA PERIOD" or "max PERIOD" (no limit).
  Limits on parent groups apply too, so every level up to the root is read.
* v1: ``/proc/self/cgroup`` has ``N:cpu,cpuacct:/some/path``; the quota is
  ``cpu.cfs_quota_us`` (-1: no limit) over ``cpu.cfs_period_us`` in
  ``/sys/fs/cgroup/cpu,cpuacct/some/path`` (or ``/sys/fs/cgroup/cpu/...``).

What a "CPU" is here (a physical core, or one hyper-thread of one), how fast its clock
runs, and who else uses it are :mod:`helpers.core.hardware`'s; the card shows them too.
Why code may still not speed up here is the benchmark's diagnosis,
:mod:`helpers.bench.diagnosis`.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from helpers.core import config, hardware

# --- CPUs ---


def affinity_cpus() -> int | None:
    """CPUs the scheduler lets this process run on, or None where the OS can't tell."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return None


def _cgroup_paths(root: Path) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and v1 ``cpu`` controller path, from /proc/self/cgroup."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    v2 = v1 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _ancestors(base: Path, relative: str) -> list[Path]:
    """``base/relative`` and each of its parents up to ``base``, deepest first.

    Inside a container the path in /proc/self/cgroup may belong to the host and not
    exist here; those levels are skipped, and ``base`` itself is always included.
    """
    parts = [p for p in relative.split("/") if p]
    levels = [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [level for level in levels if level.is_dir()] or [base]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_v2_quota(root: Path, path: str) -> float | None:
    """The tightest ``cpu.max`` quota (in CPUs) on the way from ``path`` to the root."""
    limits = []
    for level in _ancestors(root / "sys/fs/cgroup", path):
        text = _read(level / "cpu.max")
        if not text:
            continue
        quota, _, period = text.partition(" ")
        if quota == "max":
            continue
        try:
            limits.append(int(quota) / int(period or "100000"))
        except ValueError:
            continue
    return min(limits) if limits else None


def cgroup_v1_quota(root: Path, path: str) -> float | None:
    """The tightest CFS quota (in CPUs) for the v1 ``cpu`` controller."""
    limits = []
    for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
        base = root / "sys/fs/cgroup" / mount
        if not base.is_dir():
            continue
        for level in _ancestors(base, path):
            quota, period = _read(level / "cpu.cfs_quota_us"), _read(level / "cpu.cfs_period_us")
            try:
                quota_us, period_us = int(quota or "-1"), int(period or "0")
            except ValueError:
                continue
            if quota_us > 0 and period_us > 0:
                limits.append(quota_us / period_us)
        break
    return min(limits) if limits else None


def cgroup_cpu_quota(root: Path | str = "/") -> float | None:
    """The container's CPU quota in CPUs (may be fractional), or None when unlimited."""
    root = Path(root)
    v2_path, v1_path = _cgroup_paths(root)
    if v2_path is not None:
        quota = cgroup_v2_quota(root, v2_path)
        if quota is not None:
            return quota
    if v1_path is not None:
        return cgroup_v1_quota(root, v1_path)
    return None


def usable_cpus(root: Path | str = "/") -> int:
    """CPUs this process can keep busy: the smallest of count, affinity and quota.

    A fractional quota (``--cpus 1.5``) rounds *up*: 1.5 CPUs' worth of time is
    best used by two workers that are throttled a little.
    """
    candidates = [os.cpu_count() or 1]
    if hasattr(os, "process_cpu_count"):  # Python 3.13+: affinity-aware
        candidates.append(os.process_cpu_count() or 1)
    affinity = affinity_cpus()
    if affinity:
        candidates.append(affinity)
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        candidates.append(max(1, math.ceil(quota)))
    return max(1, min(candidates))


def physical_cores() -> int | None:
    """Physical cores (hyper-threads not counted), or None where unknown."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def cpu_model() -> str:
    """The CPU's marketing name, as well as this OS can tell."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    if sys.platform == "darwin":
        import subprocess

        try:
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


# --- the interpreter ---


def gil_enabled() -> bool:
    """False only on a free-threaded build running with the GIL switched off."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def free_threaded_build() -> bool:
    """True for a free-threaded (``python3.13t``-style) build."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def blas_threadpools() -> list[dict[str, Any]]:
    """BLAS/OpenMP thread pools loaded in this process (threadpoolctl), after importing NumPy."""
    try:
        import numpy  # noqa: F401  (loads the BLAS library so threadpoolctl can see it)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {
            "library": pool.get("internal_api", "?"),
            "threads": pool.get("num_threads"),
            "version": pool.get("version"),
        }
        for pool in threadpool_info()
    ]


def memory_bytes() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.virtual_memory().total


def shm_bytes() -> int | None:
    """Size of /dev/shm (shared memory), where the OS has one."""
    if not Path("/dev/shm").is_dir():
        return None
    return shutil.disk_usage("/dev/shm").total


def virtualisation(root: Path | str = "/") -> str | None:
    """The hypervisor's name if this looks like a virtual machine, else None.

    Reads what Linux exposes without privileges: the CPU's ``hypervisor`` flag and the
    DMI vendor/product strings. Elsewhere it returns None (unknown, not "bare metal").
    """
    root = Path(root)
    for name in ("sys_vendor", "product_name"):
        text = _read(root / "sys/class/dmi/id" / name) or ""
        for vendor in ("KVM", "QEMU", "VMware", "VirtualBox", "Xen", "Microsoft", "Amazon EC2",
                       "Google", "Parallels", "Apple Virtualization"):
            if vendor.lower() in text.lower():
                return vendor
    cpuinfo = _read(root / "proc/cpuinfo") or ""
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return "a hypervisor (unnamed)" if " hypervisor" in flags else None


def container(root: Path | str = "/") -> str | None:
    """The container runtime if this process runs in one (Docker, Podman, Kubernetes), else None."""
    root = Path(root)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "Kubernetes"
    if (root / ".dockerenv").exists():
        return "Docker"
    if (root / "run/.containerenv").exists():
        return "Podman"
    cgroups = _read(root / "proc/1/cgroup") or ""
    for marker, name in (("docker", "Docker"), ("kubepods", "Kubernetes"),
                         ("containerd", "containerd"), ("lxc", "LXC")):
        if marker in cgroups:
            return name
    return None


def library_versions(names: tuple[str, ...] = (
        "numpy", "joblib", "threadpoolctl", "psutil", "pillow", "matplotlib", "ipywidgets",
        "jupyterlab")) -> dict[str, str | None]:
    """Installed versions of the libraries the course uses (None: not installed)."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def benchmark_metadata() -> dict[str, Any]:
    """The machine card plus what a benchmark result needs to be compared later."""
    return {
        **machine_card().as_dict(),
        "python_build": " ".join(platform.python_build()),
        "python_compiler": platform.python_compiler(),
        "start_methods": _start_methods(),
        "libraries": library_versions(),
    }


def _start_methods() -> list[str]:
    import multiprocessing

    return multiprocessing.get_all_start_methods()


def machine_id() -> str:
    """A short, stable id for this machine that does not reveal its host name."""
    seed = f"{platform.node()}|{cpu_model()}|{os.cpu_count()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


# --- the card ---


@dataclass
class MachineCard:
    """Everything the course needs to know about where it runs. Renders as a table."""

    machine_id: str
    cpu_model: str
    logical_cpus: int
    usable_cpus: int
    affinity_cpus: int | None
    cgroup_quota_cpus: float | None
    physical_cores: int | None
    os: str
    python: str
    implementation: str
    free_threaded_build: bool
    gil_enabled: bool
    start_method: str
    quick_mode: bool
    memory_gib: float | None
    shm_gib: float | None
    blas: list[dict[str, Any]] = field(default_factory=list)
    virtualisation: str | None = None
    container: str | None = None
    threads_per_core: int | None = None  # SMT: 2 means two "CPUs" per physical core
    usable_share_cores: bool | None = None  # the usable CPUs include siblings of one core
    hybrid_cores: dict[str, int] | None = None  # performance / efficiency cores
    clock_mhz: float | None = None  # when the card was read
    clock_max_mhz: float | None = None
    # False under PYTHONDONTWRITEBYTECODE or ``python -B``, which new interpreters (spawn
    # and forkserver workers) inherit: a module with no .pyc yet is compiled in each one.
    writes_bytecode: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs in the order a learner should read them."""

        def gib(value: float | None) -> str:
            return "unknown" if value is None else f"{value:.1f} GiB"

        blas = ", ".join(f"{b['library']} ({b['threads']} threads)" for b in self.blas)
        return [
            ("CPU", self.cpu_model),
            ("CPUs in the machine (os.cpu_count)", str(self.logical_cpus)),
            ("CPUs this process may run on (affinity)", _or_unknown(self.affinity_cpus)),
            ("container CPU quota (cgroup)",
             "none" if self.cgroup_quota_cpus is None else f"{self.cgroup_quota_cpus:g} CPUs"),
            ("physical cores", _or_unknown(self.physical_cores)),
            ("logical CPUs per physical core (SMT)", _or_unknown(self.threads_per_core)),
            ("usable CPUs that share a physical core", _shares(self.usable_share_cores)),
            ("performance / efficiency cores", "not a hybrid CPU, or not shown"
             if self.hybrid_cores is None else
             f"{self.hybrid_cores['performance']} / {self.hybrid_cores['efficiency']}"),
            ("clock now / maximum", _clock(self.clock_mhz, self.clock_max_mhz)),
            ("usable CPUs: the course's default worker count", str(self.usable_cpus)),
            ("Python", f"{self.python} ({self.implementation})"),
            ("free-threaded build", "yes" if self.free_threaded_build else "no"),
            ("GIL", "enabled" if self.gil_enabled else "disabled"),
            ("start method for experiments", self.start_method),
            ("bytecode caches written (.pyc)", _bytecode(self.writes_bytecode)),
            ("experiment mode", "quick (COURSE_QUICK=1)" if self.quick_mode else "full"),
            ("memory", gib(self.memory_gib)),
            ("/dev/shm", gib(self.shm_gib) if self.shm_gib is not None else "not present"),
            ("BLAS/OpenMP thread pools", blas or "none loaded"),
            ("OS", self.os),
            ("virtual machine", self.virtualisation or "none detected"),
            ("container", self.container or "none detected"),
            ("machine id", self.machine_id),
        ]

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
            for label, value in self.rows()
        )
        return f"<table><caption>Machine card</caption>{body}</table>"


def _or_unknown(value: object) -> str:
    return "unknown" if value is None else str(value)


def _shares(value: bool | None) -> str:
    if value is None:
        return "unknown"
    return "yes: some are hyper-threads of one core" if value else "none, as far as the OS shows"


def _bytecode(writes: bool | None) -> str:
    if writes is None:
        return "unknown"
    if writes:
        return "yes"
    return "no (PYTHONDONTWRITEBYTECODE or python -B)"


def _clock(now: float | None, top: float | None) -> str:
    if now is None and top is None:
        return "unknown"
    return f"{_or_unknown(None if now is None else round(now))} / " \
           f"{_or_unknown(None if top is None else round(top))} MHz"


def machine_card(root: Path | str = "/") -> MachineCard:
    """Read the machine card for this kernel."""
    memory = memory_bytes()
    shm = shm_bytes()
    cores = hardware.topology(root)
    speed = hardware.clock(root)
    return MachineCard(
        machine_id=machine_id(),
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        usable_cpus=usable_cpus(root),
        affinity_cpus=affinity_cpus(),
        cgroup_quota_cpus=cgroup_cpu_quota(root),
        physical_cores=physical_cores(),
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=platform.python_version(),
        implementation=f"{platform.python_implementation()} {sys.version.split()[0]}",
        free_threaded_build=free_threaded_build(),
        gil_enabled=gil_enabled(),
        start_method=config.start_method(),
        quick_mode=config.quick_mode(),
        memory_gib=None if memory is None else memory / 2**30,
        shm_gib=None if shm is None else shm / 2**30,
        blas=blas_threadpools(),
        virtualisation=virtualisation(root),
        container=container(root),
        threads_per_core=cores.threads_per_core,
        usable_share_cores=cores.usable_share_cores,
        hybrid_cores=hardware.hybrid_cores(root),
        clock_mhz=speed.current_mhz,
        clock_max_mhz=speed.max_mhz,
        writes_bytecode=not sys.flags.dont_write_bytecode,
    )
