"""Helpers for the course *Scaling CPU-bound Python*.

Notebooks stay thin: prose, a prediction, a call into these modules, a plot.
Data flows one way::

    workloads ──> executor ──> trace / measure records ──> plots, widgets, checks

Importing the package imports nothing but the standard library, because worker
processes import ``helpers.workloads``, ``helpers.trace`` and ``helpers.watchdog``
(and with them this file) under every start method. Import the modules you need
directly, for example ``from helpers import machine, plots``.
"""

__version__ = "0.1.0"
