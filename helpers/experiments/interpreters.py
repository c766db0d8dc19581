"""Other Pythons on this machine, and the thread sweep run inside them.

:func:`find_interpreters` looks for ``python3.N`` and ``python3.Nt`` (free-threaded)
on ``PATH`` and in ``COURSE_PYTHONS`` (paths separated by ``os.pathsep``), asks each
what it is, and skips this kernel's own interpreter and anything that does not answer.
:func:`run_sweep` runs ``helpers.tasks.thread_sweep`` in one of them as a subprocess, with
``PYTHONPATH`` set to this course, so the other Python needs nothing installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from helpers.core import measure, paths

VARIABLE = "COURSE_PYTHONS"
CANDIDATES = [f"python3.{minor}{suffix}" for minor in range(11, 16) for suffix in ("", "t")]
FACTS = ("import json, sys, sysconfig, platform; f = getattr(sys, '_is_gil_enabled', None); "
         "print(json.dumps({'version': platform.python_version(), "
         "'free_threaded_build': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
         "'gil_enabled': True if f is None else bool(f()), 'executable': sys.executable}))")


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    free_threaded_build: bool
    gil_enabled: bool

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    @property
    def label(self) -> str:
        gil = "GIL on" if self.gil_enabled else "GIL off"
        build = "free-threaded" if self.free_threaded_build else "standard"
        return f"Python {self.version} ({build}, {gil})"


def describe(path: str, timeout: float = 20) -> Interpreter | None:
    """Ask the interpreter at ``path`` what it is; None if it does not answer properly."""
    try:
        run = subprocess.run([path, "-c", FACTS], capture_output=True, text=True,
                             timeout=timeout, env=_clean_env())
        facts = json.loads(run.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if run.returncode != 0:
        return None
    return Interpreter(path, facts["version"], facts["free_threaded_build"],
                       facts["gil_enabled"])


def find_interpreters() -> list[Interpreter]:
    """Other working Pythons (3.11+), this kernel's own excluded, one per version and build."""
    paths = [p for p in os.environ.get(VARIABLE, "").split(os.pathsep) if p]
    paths += [found for name in CANDIDATES if (found := shutil.which(name))]
    own = (sys.version.split()[0], bool(getattr(sys, "_is_gil_enabled", lambda: True)()))
    found: dict[tuple[str, bool], Interpreter] = {}
    for path in paths:
        interpreter = describe(path)
        if interpreter is None or interpreter.version_tuple < (3, 11):
            continue
        key = (interpreter.version, interpreter.free_threaded_build)
        if (interpreter.version, interpreter.gil_enabled) == own:
            continue
        found.setdefault(key, interpreter)
    return sorted(found.values(), key=lambda i: (i.version, i.free_threaded_build))


def run_sweep(interpreter: Interpreter | str, *, threads: list[int], workloads: list[str],
              task_ms: float = 10.0, tasks: int = 16, repeats: int = 3,
              executors: tuple[str, ...] = ("thread",), timeout: float = 120) -> dict[str, Any]:
    """Run the stdlib thread sweep in ``interpreter``; returns its JSON document."""
    path = interpreter.path if isinstance(interpreter, Interpreter) else interpreter
    command = [path, "-m", "helpers.tasks.thread_sweep", "--threads", ",".join(map(str, threads)),
               "--workloads", ",".join(workloads), "--task-ms", str(task_ms),
               "--tasks", str(tasks), "--repeats", str(repeats),
               "--executors", ",".join(executors)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                         env=_clean_env(PYTHONPATH=str(paths.REPO_ROOT)))
    if run.returncode != 0:
        raise RuntimeError(f"the sweep failed in {path}: {run.stderr.strip()[-500:]}")
    return json.loads(run.stdout)


def speedups(document: dict[str, Any], executor: str = "thread"
             ) -> dict[str, dict[int, measure.Spread]]:
    """Speedup over one thread, per workload and thread count, from a sweep: paired by
    repeat (the sweep runs every thread count once per repeat), median and range."""
    result = {}
    for name, timings in document["results"].get(executor, {}).items():
        triples = [(repeat, int(count), seconds) for count, values in timings.items()
                   for repeat, seconds in enumerate(values)]
        result[name] = {count: measure.spread(values) for count, values in
                        sorted(measure.paired_speedups(triples, baseline=1).items())}
    return result


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the virtual environment's Python settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYENV_VERSION")}
    env.update(extra)
    return env
