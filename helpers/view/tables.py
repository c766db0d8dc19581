"""Plain-data rows as a Markdown table, for notebooks (no pandas needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts), with ``columns`` (default: the first row's keys)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = "\n".join("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |"
                     for row in rows)
    return f"{head}\n{body}"
