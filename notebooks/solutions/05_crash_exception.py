# Exercise 05.3: the future of a task whose worker died gets WorkerCrashed
# (a subclass of concurrent.futures.process.BrokenProcessPool).
from helpers.pool import WorkerCrashed

answer_exception = WorkerCrashed
