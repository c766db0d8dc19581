"""Plain-data rows as a Markdown table, for notebooks (no pandas needed).

Experiments key their rows by identifiers (``gave_up_after_s``); the words a learner
reads (``caller gave up after (s)``) are applied here, in the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Column labels for the identifiers that experiments use as keys in their result rows.
LABELS = {
    "exit_status": "exit status",
    "there_after_kill": "still there after the kill",
    "gone_after_ms": "gone after (ms)",
    "removed_by": "removed by",
    "tracker": "resource tracker",
    "message_bytes": "message (bytes)",
    "out_of_band_bytes": "sent out of band (bytes)",
    "gave_up_after_s": "caller gave up after (s)",
    "cancel_worked": "cancel() worked",
    "stuck_ended_after_s": "stuck work ended after (s)",
    "next_task_after_s": "next task could start after (s)",
    "worker_replaced": "worker replaced",
    "predicted_speedup": "predicted speedup",
    "advice_speedup": "measured speedup of the advice",
    "measured_ms": "measured: serial / threads / processes (ms)",
    "fastest": "fastest measured",
    "advice_within_15pc": "advice within 15 % of fastest",
    "own_seconds": "own seconds",
    "share": "share of time",
    "cumulative_seconds": "with callees (s)",
    "same_labels": "same labels",
    "exit_code": "worker exit code",
    "left_in_shm": "left in /dev/shm",
    "first_call_s": "first call (computed)",
    "second_call_s": "second call (read from the cache)",
    "new_argument_s": "new argument (computed again)",
    "same_result": "same result",
    "in_this_process": "in this process",
    "the_5_tasks": "the 5 tasks",
    "afterwards": "the pool afterwards",
}


def label(key: str) -> str:
    """The words a table shows for a row key (the key itself if it has no label)."""
    return LABELS.get(key, key)


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
    head = "| " + " | ".join(label(c) for c in columns) + " |\n|" + "---|" * len(columns)
    body = "\n".join("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |"
                     for row in rows)
    return f"{head}\n{body}"
