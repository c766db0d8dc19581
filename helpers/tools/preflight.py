"""Preflight: is this machine ready for the workshop? Takes well under two minutes.

Run ``make check`` (or ``python -m helpers.tools.preflight``). Each check prints ``ok``
or what is wrong and how to fix it; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from helpers.core import config, machine, watchdog, workloads
from helpers.core.trace import traced_call

PACKAGES = ["jupyterlab", "ipykernel", "ipywidgets", "matplotlib", "numpy", "joblib",
            "threadpoolctl", "psutil", "PIL", "tqdm"]
POOL_TIMEOUT_SECONDS = 60


class PreflightError(Exception):
    """A check failed; the message says what is wrong and how to fix it."""


def check_python() -> str:
    if sys.version_info < (3, 11):  # noqa: UP036 (the preflight may run on an old Python)
        raise PreflightError(f"Python {sys.version.split()[0]} is too old; install 3.11 or newer "
                             "and run `make setup` again.")
    return f"Python {sys.version.split()[0]} at {sys.executable}"


def check_packages() -> str:
    missing = []
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise PreflightError(f"cannot import {', '.join(missing)}; run `make setup` "
                             "(or `pip install -e .` in the course's environment).")
    return f"{len(PACKAGES)} packages import"


def check_kernel() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if config.KERNEL_NAME not in specs:
        raise PreflightError(f"the Jupyter kernel {config.KERNEL_NAME!r} is not registered; "
                             "run `make setup`.")
    return f"kernel {config.KERNEL_NAME!r} at {specs[config.KERNEL_NAME]}"


def check_pool() -> str:
    method = config.start_method()
    start = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=config.mp_context(method),
                             initializer=watchdog.worker_setup) as pool:
        future = pool.submit(traced_call, workloads.python_loop, 0, time.perf_counter(), 10)
        try:
            future.result(timeout=POOL_TIMEOUT_SECONDS)
        except TimeoutError:
            raise PreflightError(
                f"a one-task process pool ({method}) did not answer in {POOL_TIMEOUT_SECONDS} s. "
                "Is `helpers` importable from any folder (`pip install -e .`)?"
            ) from None
    return f"process pool round trip ({method}) in {time.perf_counter() - start:.2f} s"


def check_widget() -> str:
    from helpers.view.widgets import ScalingDashboard

    dashboard = ScalingDashboard()
    dashboard.parameters()
    dashboard.widget()
    return f"dashboard builds (workers up to {dashboard.workers.max})"


def check_plot() -> str:
    from helpers.view import plots

    _, record = traced_call(workloads.python_loop, 0, time.perf_counter(), 10)
    png = plots.to_png(plots.timeline_plot([record]))
    return f"a timeline renders ({len(png) // 1024} KiB PNG)"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("Python", check_python),
    ("packages", check_packages),
    ("Jupyter kernel", check_kernel),
    ("process pool", check_pool),
    ("widget", check_widget),
    ("plot", check_plot),
]


def main() -> int:
    print(f"Preflight for {config.KERNEL_DISPLAY_NAME}: {machine.usable_cpus()} usable CPU(s)")
    failures = 0
    for name, check in CHECKS:
        try:
            detail = check()
        except Exception as error:
            failures += 1
            print(f"  FAIL  {name}: {error}")
        else:
            print(f"  ok    {name}: {detail}")
    if machine.usable_cpus() < 2:
        print("  note  one usable CPU: experiments will run, but parallel speedup cannot show; "
              "the notebooks compare with the reference machines in data/.")
    print("ready." if not failures else f"{failures} check(s) failed; fix them and rerun.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
