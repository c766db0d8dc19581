"""The course's benchmarks: ``python -m helpers.bench <suite>``.

Suites so far:

``pool``
    WorkerPool against ProcessPoolExecutor, multiprocessing.Pool and joblib: per-task
    overhead, auto-chunked map, coarse-task speedup, time to first result.

Each suite measures side by side in one run (interleaved repeats, medians), prints
ratios against the course's targets, and writes one JSON document in the course's
result schema, with the machine card of the machine it ran on.
"""
