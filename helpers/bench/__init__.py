"""The course's benchmarks: ``python -m helpers.bench <suite>``.

Suites:

``course`` (the default: ``python -m helpers.bench``)
    the whole course benchmark, the one notebook 10 runs (``suite.py``): serial vs
    threads vs processes, task size, per-task overhead, event-loop lag, start methods,
    BLAS threads in worker processes; and a "why no speedup?" diagnosis.

``pool`` (``pool_suite.py``)
    WorkerPool against ProcessPoolExecutor, multiprocessing.Pool, joblib/loky and (when
    installed) mpire and pebble, under fork, forkserver and spawn: per-task overhead,
    round trip, auto-chunked map, coarse-task speedup, time to first result, and the
    parent's memory over a lazy map.

Each suite measures side by side in one run (interleaved repeats, medians), prints
ratios against the course's targets, and writes one JSON document in the course's
result schema, with the machine card of the machine it ran on. ``schema.py`` types the
course result's summary (``Summary.from_json`` / ``to_json``); ``diagnosis.py`` reads a
course result and answers "why no speedup?" with ranked, quoted evidence.

The benchmark runs experiments (``helpers.experiments``); no experiment imports it.
"""
