# Exercise 04.2: results as they finish, in any order, with a progress bar.
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from helpers.core import workloads


def answer_stream(items, n_jobs):
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    results = parallel(delayed(workloads.sleep_io)(ms) for ms in items)
    yield from tqdm(results, total=len(items))
