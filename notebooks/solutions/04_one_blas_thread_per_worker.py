# Exercise 04.3: an initializer runs once in each worker: limit its BLAS threads there.
from helpers.core import workloads
from helpers.pool import WorkerPool


def answer_pool(workers):
    return WorkerPool(workers, initializer=workloads.limit_blas_threads, initargs=(1,))
