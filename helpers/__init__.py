"""Helpers for the course *Scaling CPU-bound Python*.

Notebooks stay thin: prose, a prediction, a call into these modules, a plot. The
folders are layers, and data flows one way through them::

    tasks, core.workloads ──> pool, servers ──> experiments ──> records ──> view
      (what a worker runs)      (executors)     (one topic each)           (plots, widgets,
                                                                             checks)
    bench: runs experiments and diagnoses the result; tools: preflight, handouts

==============  ===========================================================================
``core``        config (start method, quick mode), machine (the machine card), hardware
                (SMT, clock, steal, throttling), measure
                (timing, spread, speedup, models, JSON results), trace (per-task records),
                watchdog (workers die with their parent), workloads (calibrated tasks),
                cpu_sampler, paths, validate (parameter checks)
``tasks``       every other function a worker process runs: faults, pitfalls, arrays,
                production (notebooks 08 and 08b), transfer (notebook 07), thread_sweep
``pool``        the product: ``WorkerPool`` (parent, ledger, threads, worker_process and
                more), its joblib backend, notebook 05's ``build_a_pool`` steps
``servers``     prefork (the cluster pattern), asyncio_server, demo_app, gunicorn_run,
                loadgen, job_runner, dask_cluster
``experiments`` one module per topic, each returning plain typed records
``bench``       ``python -m helpers.bench``: the course and pool suites, the "why no
                speedup?" diagnosis
``view``        plots, production_plots, widgets, checks, predictions, tables, compare,
                explain_production, instructors (INSTRUCTORS.md's generated sections)
``tools``       preflight (``make check``), handouts (``make handouts``), setup_course
                (set-up without make, for Windows)
==============  ===========================================================================

A module imports only from its own row and the rows above it (``view`` may import
``experiments``, never the reverse),
and ``core``, ``tasks``, ``pool`` and ``servers`` are standard library only (all but
``pool.joblib_backend``): worker processes import them under every start method, and
with them this file, which therefore imports nothing.

Which modules serve which notebook:

====  ===================  ===============================================================
 00   your machine         core.machine, .hardware; experiments.strong_scaling;
                           view.compare
 01   the event loop       experiments.eventloop
 02   threads and the GIL  experiments.gil, .races, .interpreters; tasks.thread_sweep;
                           core.cpu_sampler
 03   processes            experiments.processes, .strong_scaling, .joblib_runs;
                           tasks.pitfalls; view.compare
 04   joblib               experiments.joblib_runs; tasks.arrays; view.tables
 05   build a worker pool  pool (parent, worker_process, build_a_pool);
                           experiments.pools, .pool_overhead; tasks.faults
 06   the cluster pattern  servers.prefork, .asyncio_server, .demo_app, .gunicorn_run,
                           .loadgen; experiments.server_load
 07   moving data          experiments.data_transfer, .shm_ownership; tasks.transfer
 08   production patterns  experiments.production_patterns, .serial_first, .sizing,
                           .advisor; tasks.production; servers.job_runner;
                           view.production_plots, .explain_production, .compare
 09   beyond one machine   servers.dask_cluster; experiments.dask_runs, .pools;
                           view.production_plots
 10   capstone             bench (suite, diagnosis); core.hardware; view.compare
====  ===================  ===============================================================

Besides these, the notebooks use ``view.checks`` (all), ``view.plots`` and
``view.widgets`` (most), and ``view.predictions`` (01, 02, 04, 06).
"""

from __future__ import annotations

__version__ = "0.1.0"


def advise(task_seconds: float, *, payload_bytes: int = 0, cpus: int | None = None,
           gil_releasing: bool = False, tasks: int = 1000, model=None):
    """Serial, threads or processes for this job, and why: see :mod:`helpers.experiments.advisor`.

    Imported on first call, so worker processes that import this package pay nothing.
    """
    from helpers.experiments.advisor import advise as advise_from_model

    return advise_from_model(task_seconds, payload_bytes=payload_bytes, cpus=cpus,
                             gil_releasing=gil_releasing, tasks=tasks, model=model)
