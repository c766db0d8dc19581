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
