"""Print the notebooks that start processes, one path a line: make test runs them again
under spawn and forkserver.

    python .ci/process_notebooks.py [FOLDER]     (default: notebooks/ beside .ci/)

Each notebook is read as JSON: ``metadata.course.starts_processes`` (true or false) says.
Finding none is an error, not an empty list: pytest given no notebook would run the
unit tests again instead, and the start-method passes would prove nothing. Standard
library only; the exit status is 1, with the reason on stderr, when something is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def process_notebooks(folder: Path) -> list[Path]:
    """The notebooks in ``folder`` whose metadata says they start processes, sorted."""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        flag = metadata.get("course", {}).get("starts_processes", False)
        if not isinstance(flag, bool):
            raise ValueError(f"{path}: metadata.course.starts_processes must be true or "
                             f"false, not {flag!r}")
        if flag:
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "notebooks"
    try:
        found = process_notebooks(folder)
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        print(f"process_notebooks: {error}", file=sys.stderr)
        return 1
    if not found:
        print(f"process_notebooks: no notebook in {folder} has "
              "metadata.course.starts_processes = true, so the spawn and forkserver passes "
              "would run nothing", file=sys.stderr)
        return 1
    cwd = Path.cwd()
    for path in found:
        print(path.relative_to(cwd) if path.is_relative_to(cwd) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
