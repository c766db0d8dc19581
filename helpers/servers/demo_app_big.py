"""The demo app with a large read-only table loaded at import: for copy-on-write experiments.

A real web app often loads something big when it starts (a model, a lookup table).
Imported in the master before forking (gunicorn ``--preload``), the table's memory
pages are shared by every worker, until something writes to them. Python writes to
*every* object it touches: reference counts, and the garbage collector's bookkeeping
during a full collection. ``/gc`` runs a full collection, as a long-running worker
eventually would, so the notebook can measure how much of the table stays shared.
``/read`` reads every row, as a route that looks things up in the table would.

With ``COURSE_GC_FREEZE=1`` the table is moved out of the collector's reach with
``gc.freeze()`` (after it is built, before the fork): the collector no longer writes to
it. Reading it still does (each row's reference count goes up and down), so the pages a
worker reads are copied all the same. Standard library only.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from typing import Any

from helpers.servers import demo_app

TABLE_ROWS = int(os.environ.get("COURSE_TABLE_ROWS", "400000"))
# lists, not tuples or dicts of numbers: CPython stops tracking those, and the collector
# would then never touch them.
TABLE = [[i, f"row {i}", [i % 7, i % 11]] for i in range(TABLE_ROWS)]

if os.environ.get("COURSE_GC_FREEZE") == "1":
    gc.freeze()


def app(environ: dict[str, Any], start_response: demo_app.StartResponse) -> Iterable[bytes]:
    """The demo app, plus ``/gc`` (a full garbage collection in this worker) and ``/read``
    (read every row of the table)."""
    if environ.get("PATH_INFO") == "/gc":
        gc.collect()
        environ = {**environ, "PATH_INFO": "/whoami"}
    elif environ.get("PATH_INFO") == "/read":
        sum(row[0] for row in TABLE)
        environ = {**environ, "PATH_INFO": "/whoami"}
    return demo_app.app(environ, start_response)
