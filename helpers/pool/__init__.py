"""The course's product: ``WorkerPool``, a process pool with no dependencies.

==========================  ==========================================================
``parent``                  :class:`WorkerPool` itself: futures, batching, the sender
                            and receiver threads, crash recovery, timeouts, shutdown
``worker_process``          what runs inside each worker process
``joblib_backend``          ``joblib.Parallel(backend="worker-pool")`` (the only module
                            here that needs a third-party package: joblib)
``build_a_pool``            notebook 05's four steps towards the finished pool
==========================  ==========================================================

Everything but ``joblib_backend`` is standard library only: worker processes import it
under every start method. ``from helpers.pool import WorkerPool`` is the usual import.
"""

from helpers.pool.parent import (
    PoolTerminated,
    TaskTimeout,
    WorkerCrashed,
    WorkerInitError,
    WorkerPool,
)

__all__ = ["WorkerPool", "WorkerCrashed", "WorkerInitError", "TaskTimeout", "PoolTerminated"]
