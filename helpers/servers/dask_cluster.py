"""One Dask cluster per notebook: found by address, or started here, always closed (notebook 09).

    DASK_SCHEDULER_ADDRESS set? ── yes ──> Client("tcp://host:8786")  a real cluster: we
             │                                                        close only our client
             no
             ▼
    LocalCluster: one worker *process* per usable CPU, one thread each, on 127.0.0.1;
    its dashboard on a free port when bokeh is installed

``start()`` returns a :class:`DaskSession`; ``session.close()`` (or a ``with`` block)
closes the client and, if we started it, the cluster. As a safety net the session is
also closed when the kernel exits normally, and Dask's worker processes exit by
themselves when the process that started them dies (a killed or restarted kernel):
the tests check both. ``DASK_SCHEDULER_ADDRESS`` is the variable Dask itself reads
(its ``scheduler-address`` setting), so the same notebook runs unchanged on a real
cluster.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

from helpers.core import machine, validate

ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"


def bokeh_installed() -> bool:
    """Dask's dashboard needs bokeh; without it the scheduler runs without one."""
    return importlib.util.find_spec("bokeh") is not None


@dataclass(eq=False)  # compared by identity, so sessions can sit in a WeakSet
class DaskSession:
    """A Dask client, and the LocalCluster behind it if this notebook started one."""

    client: Any
    cluster: Any | None
    address: str
    started_here: bool
    workers: int
    notes: list[str] = field(default_factory=list)

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard's URL, or None without bokeh (or on a cluster that has none)."""
        if not bokeh_installed():
            return None
        try:
            return self.client.dashboard_link
        except Exception:  # a remote scheduler may have no dashboard
            return None

    def worker_pids(self) -> list[int]:
        """The pids of the worker processes (asked from each worker)."""
        return sorted(self.client.run(os.getpid).values())

    def describe(self) -> str:
        where = ("a LocalCluster started by this notebook" if self.started_here
                 else f"the cluster at {self.address} (from ${ADDRESS_VARIABLE})")
        return f"{where}: {self.workers} worker process(es), scheduler {self.address}"

    def close(self) -> None:
        """Close the client, then the cluster if we started it. Safe to call twice."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        _open_sessions.discard(self)

    def __enter__(self) -> DaskSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_open_sessions: weakref.WeakSet[DaskSession] = weakref.WeakSet()


@atexit.register
def _close_open_sessions() -> None:
    for session in list(_open_sessions):
        session.close()


def start(workers: int | None = None, address: str | None = None,
          local: bool = False) -> DaskSession:
    """Connect to ``address`` (default: ``$DASK_SCHEDULER_ADDRESS``), else start a LocalCluster.

    ``workers`` sizes a LocalCluster (default: this kernel's usable CPUs, from the machine
    card: one process per CPU, one thread each, so pure-Python tasks do not fight over a GIL).
    ``local=True`` always starts a LocalCluster, whatever the environment says.
    """
    from dask.distributed import Client, LocalCluster

    address = None if local else (address or os.environ.get(ADDRESS_VARIABLE) or None)
    if address:
        client = Client(address, timeout="10s")
        count = len(client.scheduler_info()["workers"])
        session = DaskSession(client, None, address, False, count)
    else:
        usable = machine.usable_cpus()
        workers = usable if workers is None else workers
        validate.whole_number("workers", workers)
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0" if bokeh_installed() else None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
        session = DaskSession(client, cluster, cluster.scheduler_address, True, workers)
        if workers > usable:
            session.notes.append(f"{workers} workers on {usable} usable CPUs: they take turns.")
    if not bokeh_installed():
        session.notes.append("bokeh is not installed, so there is no dashboard "
                             "(`pip install bokeh` and restart the kernel to get one).")
    _open_sessions.add(session)
    return session
