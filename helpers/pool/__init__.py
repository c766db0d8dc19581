"""The course's product: ``WorkerPool``, a process pool with no dependencies.

==========================  ==========================================================
``parent``                  :class:`WorkerPool` itself: the public API (submit, map,
                            shutdown...) and the data-flow picture
``ledger``                  the pool's books and states: where every task is
``threads``                 the sender and receiver threads, and what each may do
``futures``                 the Future whose ``cancel()`` stops a running task
``messages``                what parent and worker send each other; the progress board
``worker_process``          what runs inside each worker process
``fork_server``             under fork, the single-threaded process workers fork from
``errors``                  WorkerCrashed, TaskTimeout, ... (stdlib error subclasses)
``stats``                   ``WorkerPool.stats()``: percentiles and utilisation
``joblib_backend``          ``joblib.Parallel(backend="worker-pool")`` (the only module
                            here that needs a third-party package: joblib)
``build_a_pool``            notebook 05's four steps towards the finished pool
==========================  ==========================================================

Everything but ``joblib_backend`` is standard library only: worker processes import it
under every start method. ``from helpers.pool import WorkerPool`` is the usual import.

The names below are looked up when first asked for (PEP 562's module ``__getattr__``),
not imported with this package: a worker process started by spawn or forkserver imports
``helpers.pool.worker_process``, and with it this file, before it can run a task. Importing
the parent's side here (the pool, its threads, ``concurrent.futures``) would add about
0.1 s to every worker's start on a 2-core machine, for modules a worker never uses.
"""

import importlib

#: Each public name, and the module of this package that defines it.
_PUBLIC = {
    "WorkerPool": "parent",
    "WorkerCrashed": "errors",
    "WorkerInitError": "errors",
    "TaskTimeout": "errors",
    "PoolTerminated": "errors",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
