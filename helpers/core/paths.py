"""Where the course's files are: one place, so that moving a module cannot break a path."""

from pathlib import Path

#: The repository: ``helpers/``, ``data/``, ``notebooks/`` (this file is helpers/core/paths.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
#: Measured benchmark results of reference machines, with the machine card of each.
REFERENCE_DIR = DATA_DIR / "reference"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"
