"""Helpers for the course *Scaling CPU-bound Python*.

Notebooks stay thin: prose, a prediction, a call into these modules, a plot.
Data flows one way::

    workloads ──> executor ──> trace / measure records ──> plots, widgets, checks

Importing the package imports nothing but the standard library, because worker
processes import the worker-side modules (``workloads``, ``trace``, ``watchdog``,
``faults``, ``pool_worker``, ``build_a_pool``; and with them this file) under every
start method. Import the modules you need directly, for example
``from helpers import machine, plots``. The modules that need third-party packages
(``plots``, ``widgets``, ``joblib_backend``, ``pool_experiments``, ``bench``) are
imported only in the parent process.
"""

__version__ = "0.1.0"


def advise(task_seconds: float, payload_bytes: int = 0, cpus: int | None = None,
           gil_releasing: bool = False, tasks: int = 1000, model=None):
    """Serial, threads or processes for this job, and why: see :mod:`helpers.advisor`.

    Imported on first call, so worker processes that import this package pay nothing.
    """
    from .advisor import advise as advise_from_model

    return advise_from_model(task_seconds, payload_bytes, cpus, gil_releasing, tasks, model)
