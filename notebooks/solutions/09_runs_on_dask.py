# Exercise 09.1: the same joblib line; the backend is chosen around it.
from joblib import Parallel, delayed, parallel_config


def answer_on_dask(fn, items):
    with parallel_config(backend="dask"):
        return Parallel()(delayed(fn)(x) for x in items)
