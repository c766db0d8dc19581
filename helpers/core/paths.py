"""Where the course's files are: one place, so that moving a module cannot break a path."""

import os
import tempfile
from pathlib import Path

#: The repository: ``helpers/``, ``data/``, ``notebooks/`` (this file is helpers/core/paths.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
#: Measured benchmark results of reference machines, with the machine card of each.
REFERENCE_DIR = DATA_DIR / "reference"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"


def exercise_file(name: str) -> str:
    """Where an exercise's ``%%writefile`` goes: a folder of this kernel's own in the
    temporary directory (learners sharing a server do not overwrite each other's files),
    never the course's checkout."""
    folder = Path(tempfile.gettempdir()) / f"course-exercises-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return str(folder / name)
