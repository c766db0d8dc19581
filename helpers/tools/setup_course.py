"""Set the course up and open it, on any OS, with nothing but Python: no make, no conda.

From the repository's folder (PowerShell, cmd, or any shell)::

    python -m helpers.tools.setup_course lab     # set up .venv, then open JupyterLab
    python -m helpers.tools.setup_course test    # set up .venv with the test tools, run pytest
    python -m helpers.tools.setup_course setup   # only set up

It sets up as ``make lab`` does: create ``.venv``, install the course into it (editable,
with the exact versions in ``constraints.txt``), register the Jupyter kernel **Python
(scaling CPU-bound course)**; then it starts JupyterLab, or runs the tests and every
notebook once (``make test`` also repeats the notebooks under other start methods). On Windows the
virtual environment's Python is ``.venv\\Scripts\\python.exe``; elsewhere ``.venv/bin/python``.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

from helpers.core.config import KERNEL_DISPLAY_NAME as KERNEL_DISPLAY
from helpers.core.config import KERNEL_NAME as KERNEL
from helpers.core.paths import REPO_ROOT

#: What a learner needs (the notebooks, notebook 09's Dask, notebook 06's gunicorn) ...
LEARNER_EXTRAS = "lab,dask,server"
#: ... and what the test suite needs on top.
TEST_EXTRAS = "lab,dask,server,test"


def venv_python(venv_dir: Path, platform: str = sys.platform) -> Path:
    """The virtual environment's interpreter: ``Scripts\\python.exe`` on Windows."""
    if platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def install_commands(python: Path, extras: str) -> list[list[str]]:
    """pip commands that install the course (with ``extras``) and register its kernel."""
    return [
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", "-c", "constraints.txt",
         "-e", f".[{extras}]"],
        [str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
         "--display-name", KERNEL_DISPLAY],
    ]


def run_command(action: str, python: Path, running_as_root: bool) -> list[str]:
    """The command that opens the course (``lab``) or runs the tests (``test``)."""
    if action == "lab":
        command = [str(python), "-m", "jupyter", "lab", "notebooks/00_your_machine.ipynb"]
        if running_as_root:  # Jupyter refuses root unless told (containers, cloud boxes)
            command.insert(4, "--allow-root")
        return command
    if action == "test":
        return [str(python), "-m", "pytest", "tests", "notebooks", "--nbval-lax",
                "--nbval-current-env", "--nbval-cell-timeout=90"]
    raise ValueError(f"action must be one of: setup, lab, test; got {action!r}")


def is_root() -> bool:
    """True for root on Unix; Windows has no uid 0 and JupyterLab does not ask there."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def set_up(extras: str, venv_dir: Path | None = None) -> Path:
    """Create the virtual environment if needed and install the course into it."""
    if sys.version_info < (3, 11):  # noqa: UP036 (it may be run with an old Python)
        raise SystemExit("Python 3.11 or newer is needed: run this with a newer python.")
    venv_dir = venv_dir or REPO_ROOT / ".venv"
    python = venv_python(venv_dir)
    if not python.exists():
        print(f"creating {venv_dir}")
        venv.create(venv_dir, with_pip=True)
    for command in install_commands(python, extras):
        print(" ".join(command))
        subprocess.run(command, cwd=REPO_ROOT, check=True)
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.tools.setup_course",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("setup", "lab", "test"), nargs="?", default="lab")
    args = parser.parse_args(argv)
    python = set_up(TEST_EXTRAS if args.action == "test" else LEARNER_EXTRAS)
    if args.action == "setup":
        return 0
    return subprocess.run(run_command(args.action, python, is_root()), cwd=REPO_ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
