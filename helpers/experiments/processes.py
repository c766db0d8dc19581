"""Notebooks 03 and 03b's experiments: the pitfalls of using processes, and what they cost.

::

    start_method_costs   fork | forkserver | spawn ──> time to first result, USS/PSS per worker
    fork_with_threads    this kernel's threads, and what fork() warns about them
    in_a_pool            run a function in a fresh pool: its result, or the error, caught
    notebook_function_outcomes / explain_notebook_function
                         a notebook's function under every start method, and what that shows
    guard_demo           a script without / with `if __name__ == "__main__"`, under spawn
    random_draws         NumPy's global generator after fork, the random module, seeded tasks
    queue_logging        log records from workers, through a QueueHandler, to this process
    remote_traceback     the worker's traceback, as ProcessPoolExecutor hands it back
    pickling_costs       payload size ──> pickling time and a round trip through a worker
    break_even           task duration × chunk size ──> speedup (where parallelism loses)
    chunk_run            one map with a timeline, for the dashboard

Every pool and process started here is stopped before the function returns.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import pickle
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core import config, machine, measure, paths, watchdog, workloads
from helpers.core.trace import TaskRecord
from helpers.experiments import executors, learner_code
from helpers.pool import WorkerPool
from helpers.tasks import pitfalls

# --- start methods ---


def start_method_costs(methods: list[str] | None = None, workers: int = 2,
                       repeats: int | None = None) -> list[dict[str, Any]]:
    """Per start method: time until a fresh pool returns its first result, and the memory
    each worker uses of its own (USS) and its share of shared pages (PSS), in MiB."""
    import psutil

    methods = methods or multiprocessing.get_all_start_methods()
    repeats = repeats or int(config.budget(5, 3))
    first: dict[str, list[float]] = {m: [] for m in methods}
    memory: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    for _, method in measure.interleaved(methods, repeats):
        start = time.perf_counter()
        with WorkerPool(workers, mp_context=multiprocessing.get_context(method)) as pool:
            pool.submit(workloads.noop).result()
            first[method].append(time.perf_counter() - start)
            executors.warm_up(pool, workers)
            for pid in pool.worker_pids():
                info = psutil.Process(pid).memory_full_info()
                memory[method].append((info.uss / 2**20, getattr(info, "pss", 0) / 2**20))
    rows = []
    for method in methods:
        s = measure.spread(first[method])
        rows.append({"method": method, "first_result_ms": s.median * 1000,
                     "low_ms": s.low * 1000, "high_ms": s.high * 1000,
                     "uss_mib": statistics.median(u for u, _ in memory[method]),
                     "pss_mib": statistics.median(p for _, p in memory[method])})
    return rows


def fork_with_threads() -> tuple[list[str], list[str]]:
    """(names of this process's threads, warnings raised by forking a child here)."""
    names = [t.name for t in threading.enumerate()]
    if "fork" not in multiprocessing.get_all_start_methods():
        return names, ["this OS has no fork()"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        child = multiprocessing.get_context("fork").Process(target=workloads.noop)
        child.start()
        child.join()
    return names, [str(w.message) for w in caught]


# --- pitfalls ---


def in_a_pool(fn: Any, method: str | None, *args: Any, timeout: float = 30) -> str:
    """Run ``fn(*args)`` in a fresh 1-worker ProcessPoolExecutor; say what happened.

    ``method`` None is what ``ProcessPoolExecutor()`` uses without ``mp_context``:
    multiprocessing's default start method (``COURSE_START_METHOD`` does not change it).
    """
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method),
                               initializer=watchdog.worker_setup)
    try:
        return f"result: {pool.submit(fn, *args).result(timeout)!r}"
    except BrokenProcessPool as error:
        return (f"{type(error).__name__}: {error} (the worker died before it sent anything "
                "back; it wrote its own traceback to its stderr)")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class PoolOutcome:
    """What one start method did with a function: its result, or the error the parent saw."""

    method: str
    default: bool  # the start method ProcessPoolExecutor() uses without mp_context
    text: str      # in_a_pool's answer

    @property
    def worked(self) -> bool:
        return self.text.startswith("result: ")

    @property
    def error(self) -> str:
        """The exception's name (``BrokenProcessPool``...), or "" if it worked."""
        return "" if self.worked else self.text.split(":", 1)[0]


def notebook_function_outcomes(fn: Any, *args: Any,
                               methods: list[str] | None = None) -> list[PoolOutcome]:
    """Run ``fn(*args)`` in a fresh pool under every start method this platform has."""
    default = multiprocessing.get_start_method()
    return [PoolOutcome(method, method == default, in_a_pool(fn, method, *args))
            for method in methods or multiprocessing.get_all_start_methods()]


#: How each start method's worker gets hold of a function the parent sends by name.
FINDS_FUNCTION = {
    "fork": "the worker is a copy of this kernel, `{name}` included",
    "spawn": "the worker is a fresh interpreter that imports `{name}`'s module by name",
    "forkserver": "the worker is forked from a server process that was started like spawn, "
                  "and imports `{name}`'s module by name",
}


def explain_notebook_function(outcomes: list[PoolOutcome], name: str = "square") -> str:
    """What the outcomes show, in Markdown: which start methods found the function, what
    plain ``ProcessPoolExecutor()`` does on this kernel, and where a dead worker's
    traceback went. Written from the outcomes, so it holds whichever of them worked."""
    lines = []
    for outcome in outcomes:
        how = FINDS_FUNCTION.get(outcome.method, "the worker looks `{name}` up by name")
        how = how.format(name=name)
        if outcome.worked:
            lines.append(f"- **{outcome.method}**: {how}, so the task ran.")
        elif outcome.method == "fork":
            lines.append(f"- **fork**: {how}, yet the task failed: `{outcome.error}`.")
        else:
            lines.append(f"- **{outcome.method}**: {how}; a function defined in a notebook "
                         f"has no module to import, so the worker fails while reading the "
                         f"task, and the parent sees only `{outcome.error}`.")
    default = next((o for o in outcomes if o.default), None)
    if default is not None:
        lines.append(
            f"- A plain `ProcessPoolExecutor()` uses multiprocessing's default start method, "
            f"here **{default.method}** (`COURSE_START_METHOD` changes only the course's "
            f"experiments), so here it {'works' if default.worked else 'fails'}. "
            "That default is fork on Linux up to Python 3.13 but **forkserver from Python "
            "3.14**, and spawn on macOS and Windows: on 3.14 Linux, a notebook function in "
            "a `ProcessPoolExecutor()` fails by default.")
    if any(o.error == "BrokenProcessPool" for o in outcomes):
        lines.append(
            f"- The dead worker wrote its own traceback, which names the missing `{name}`, "
            "to its standard error: the kernel's, which it inherited. On Linux and macOS "
            "Jupyter (ipykernel 6 and later) forwards that into the notebook (red text under "
            "the cell that ran the pools, or a moment later under another) and into the "
            "terminal that started Jupyter; on Windows it reaches only that terminal.")
    return "\n".join(lines)


GUARD_SCRIPT = """\
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from helpers.core import workloads
{body}
"""
UNGUARDED = """
with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
    print(list(pool.map(workloads.noop, range(4))))
"""
GUARDED = """
if __name__ == "__main__":
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        print(list(pool.map(workloads.noop, range(4))))
"""


@dataclass
class ScriptRun:
    name: str
    source: str
    returncode: int
    output: str  # the last lines of stdout and stderr


def guard_demo(directory: Path | str) -> list[ScriptRun]:
    """Run the same spawn-pool script without and with the ``__main__`` guard."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runs = []
    for name, body in (("no_guard.py", UNGUARDED), ("with_guard.py", GUARDED)):
        source = GUARD_SCRIPT.format(body=textwrap.dedent(body))
        path = directory / name
        path.write_text(source)
        env = {**os.environ, "PYTHONPATH": str(paths.REPO_ROOT)}
        script = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env,
                                  start_new_session=True)
        try:
            output, _ = script.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)  # the script and every process it started
            output, _ = script.communicate()
            output += "\n(stopped after 60 s)"
        lines = output.strip().splitlines()
        runs.append(ScriptRun(name, source, script.returncode, "\n".join(lines[-10:])))
    return runs


def random_draws(method: str, tasks: int = 4, workers: int = 2) -> dict[str, list[tuple]]:
    """(pid, number) per task from: NumPy's global generator, ``random``, seeded tasks."""
    import numpy as np

    np.random.randint(10)  # this process has used NumPy's global generator: forks copy it
    seeds = np.random.SeedSequence(2026).spawn(tasks)
    context = multiprocessing.get_context(method)
    results = {}
    for label, fn, args in (("numpy global", pitfalls.numpy_random_draw, range(tasks)),
                            ("random module", pitfalls.stdlib_random_draw, range(tasks)),
                            ("seeded per task", pitfalls.seeded_draw, seeds)):
        with ProcessPoolExecutor(workers, mp_context=context,
                                 initializer=watchdog.worker_setup) as pool:
            results[label] = list(pool.map(fn, args))
    return results


def repeated_numbers(draws: list[tuple[int, int]]) -> int:
    """How many draws repeat a number another worker already drew."""
    first_pid: dict[int, int] = {}
    repeats = 0
    for pid, number in draws:
        if number in first_pid and first_pid[number] != pid:
            repeats += 1
        first_pid.setdefault(number, pid)
    return repeats


def queue_logging(method: str, tasks: int = 4) -> list[str]:
    """Worker log lines, sent through a queue and formatted here, in this process."""
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(processName)s (pid %(process)d): %(message)s"))
    listener = logging.handlers.QueueListener(queue, handler)
    listener.start()
    try:
        with ProcessPoolExecutor(2, mp_context=context, initializer=pitfalls.setup_queue_logging,
                                 initargs=(queue,)) as pool:
            list(pool.map(pitfalls.log_and_square, range(tasks)))
    finally:
        listener.stop()
        queue.close()
        queue.join_thread()
    return lines


def remote_traceback(method: str) -> tuple[str, str]:
    """(the error as the parent sees it, the worker's own traceback)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method),
                             initializer=watchdog.worker_setup) as pool:
        try:
            pool.submit(pitfalls.parse_record, "a=1;b").result()
        except ValueError as error:
            here = "".join(traceback.format_exception_only(error)).strip()
            remote = str(error.__cause__) if error.__cause__ is not None else "(none)"
            return here, remote.strip()
    return "no error", ""


# --- what a task costs ---


def pickling_costs(sizes: list[int] | None = None, repeats: int = 3) -> list[dict[str, float]]:
    """Per payload size (bytes): pickle+unpickle here, and a round trip through a worker."""
    top = 64 * 2**20 if not config.quick_mode() else 16 * 2**20
    sizes = sizes or [2**k for k in range(10, top.bit_length()) if 2**k <= top]
    rows = []
    with WorkerPool(1, mp_context=config.mp_context()) as pool:
        pool.submit(pitfalls.echo_size, b"warm").result()
        for size in sizes:
            payload = os.urandom(size)
            pickled, round_trip = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                pickle.loads(pickle.dumps(payload))
                pickled.append(time.perf_counter() - start)
                start = time.perf_counter()
                pool.submit(pitfalls.echo_size, payload).result()
                round_trip.append(time.perf_counter() - start)
            rows.append({"bytes": size, "pickle_s": statistics.median(pickled),
                         "round_trip_s": statistics.median(round_trip),
                         "round_trip_low": min(round_trip), "round_trip_high": max(round_trip)})
    return rows


def break_even(task_ms: tuple[float, ...] = (0.05, 0.2, 1.0, 5.0),
               chunksizes: tuple[int, ...] = (1, 8, 64), workers: int | None = None,
               job_seconds: float | None = None, repeats: int | None = None
               ) -> list[dict[str, Any]]:
    """Speedup of ``ProcessPoolExecutor.map`` over a serial loop, per task size and chunk size.

    Each task size gets a job of about ``job_seconds`` of serial work, cut into tasks.
    """
    workers = workers or machine.usable_cpus()
    job_seconds = job_seconds or config.budget(0.4, 0.2)
    repeats = repeats or int(config.budget(3, 2))
    calibration = workloads.calibrate("python", budget_seconds=0.2)
    rows = []
    with ProcessPoolExecutor(workers, mp_context=config.mp_context(),
                             initializer=watchdog.worker_setup) as pool:
        executors.warm_up(pool, workers)
        for ms in task_ms:
            units = calibration.units_for(ms / 1000)
            tasks = max(4 * workers, round(job_seconds / (ms / 1000)))
            configs = ["serial", *chunksizes]
            times: dict[Any, list[float]] = {c: [] for c in configs}
            for _, chosen in measure.interleaved(configs, repeats):
                start = time.perf_counter()
                if chosen == "serial":
                    for _ in range(tasks):
                        workloads.python_loop(units)
                else:
                    list(pool.map(workloads.python_loop, [units] * tasks, chunksize=chosen))
                times[chosen].append(time.perf_counter() - start)
            serial = statistics.median(times["serial"])
            for chunksize in chunksizes:
                speedups = [serial / t for t in times[chunksize]]
                s = measure.spread(speedups)
                rows.append({"task_ms": ms, "chunksize": chunksize, "tasks": tasks,
                             "workers": workers, "speedup": s.median, "low": s.low,
                             "high": s.high})
    return rows


@dataclass
class ChunkRun:
    """One map over a pool, with its timeline: what the dashboard draws."""

    task_ms: float
    chunksize: int
    workers: int
    tasks: int
    serial_seconds: float
    parallel_seconds: float
    records: list[TaskRecord]

    @property
    def speedup(self) -> float:
        return self.serial_seconds / self.parallel_seconds


def chunk_run(task_ms: float = 1.0, chunksize: int = 1, workers: int | None = None,
              job_seconds: float = 0.3) -> ChunkRun:
    """Time a job serially and as ``WorkerPool.map(chunksize=...)``, keeping the timeline."""
    workers = workers or machine.usable_cpus()
    if not 0.01 <= task_ms <= 2000:
        raise ValueError(f"task_ms must be 0.01 to 2000, got {task_ms!r}")
    if not 1 <= chunksize <= 10_000:
        raise ValueError(f"chunksize must be 1 to 10000, got {chunksize!r}")
    calibration = workloads.calibrate("python", budget_seconds=0.2)
    units = calibration.units_for(task_ms / 1000)
    tasks = min(20_000, max(2 * workers, round(job_seconds / (task_ms / 1000))))
    start = time.perf_counter()
    for _ in range(tasks):
        workloads.python_loop(units)
    serial = time.perf_counter() - start
    with WorkerPool(workers, mp_context=config.mp_context()) as pool:
        executors.warm_up(pool, workers)
        pool.trace(clear=True)
        start = time.perf_counter()
        list(pool.map(workloads.python_loop, [units] * tasks, chunksize=chunksize))
        parallel = time.perf_counter() - start
        records = pool.trace(clear=True)
    return ChunkRun(task_ms, chunksize, workers, tasks, serial, parallel, records)


# --- a learner's module (exercise 03.1) ---


def run_module_function(path: str, name: str, args: list[Any], timeout: float = 60.0,
                        start_method: str = "spawn") -> list[Any]:
    """Import the module the learner wrote at ``path`` (afresh: it may have changed since),
    and map its function ``name`` over ``args`` in a new pool under ``start_method``. The
    module's folder goes on ``sys.path`` first: spawned workers inherit this process's path,
    and import the module by name, exactly as they would import it from a project."""
    import importlib

    from helpers.pool import WorkerPool

    folder, module_name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)[:-3]
    if folder not in sys.path:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    sys.modules.pop(module_name, None)
    module = importlib.import_module(module_name)
    fn = getattr(module, name)
    pool = WorkerPool(2, mp_context=multiprocessing.get_context(start_method))
    try:
        return list(pool.map(fn, args, timeout=timeout))
    finally:
        pool.terminate()  # stops a worker stuck in the learner's function, too


# --- exercise 03.2: a seed for every task ---


@dataclass
class SeedRun:
    """A learner's ``draws(pool, tasks, seed)`` called three times on pools that copied a
    used global generator (fork where it exists): twice with one seed, once with another."""

    start_method: str
    tasks: int
    seed: int
    first: Any = None
    again: Any = None
    other: Any = None
    error: BaseException | None = None


def check_seeded_draws(fn: Any, tasks: int = 8, seed: int = 2026,
                       time_limit: float = 60.0) -> SeedRun:
    """Run the learner's ``fn(pool, tasks, seed)`` the way the pitfall bites: this process
    has used NumPy's global generator, and the workers are forked copies of it (or spawned
    where fork is missing). Each call gets a fresh 2-worker pool, stopped afterwards;
    TimeoutError if a call has not returned after ``time_limit`` seconds."""
    import numpy as np

    from helpers.pool import WorkerPool

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    np.random.randint(10)  # the parent has used the global generator: forks copy its state
    run = SeedRun(method, tasks, seed)
    for name, value in (("first", seed), ("again", seed), ("other", seed + 1)):
        pool = WorkerPool(2, mp_context=multiprocessing.get_context(method),
                          initializer=watchdog.worker_setup)
        outcome: dict[str, Any] = {}

        def call(pool: Any = pool, value: int = value, outcome: dict = outcome) -> None:
            result = fn(pool, tasks, value)
            outcome["result"] = list(result) if result is not None else None

        try:
            run.error = learner_code.run_with_time_limit(
                call, time_limit, name="exercise-03.2", what=f"draws(pool, {tasks}, {value})")
        finally:
            pool.terminate()  # also ends a call still waiting on this pool
        if run.error is not None:
            return run
        setattr(run, name, outcome.get("result"))
    return run
