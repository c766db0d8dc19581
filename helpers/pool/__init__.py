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
"""

from helpers.pool.errors import PoolTerminated, TaskTimeout, WorkerCrashed, WorkerInitError
from helpers.pool.parent import WorkerPool

__all__ = ["WorkerPool", "WorkerCrashed", "WorkerInitError", "TaskTimeout", "PoolTerminated"]
