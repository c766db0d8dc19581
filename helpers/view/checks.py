"""Exercise checkers.

Every exercise has a placeholder cell the learner edits (``answer = ...``) and a
check cell that calls a checker here. A checker never raises: it shows
"correct" or "not yet" with a hint and returns True or False, so notebooks run
clean under nbval and in handouts whatever the learner typed.

To write a checker, decorate a function that returns ``(ok, message)`` and may
raise :class:`NotYet` with a hint; the decorator handles the placeholder, display
and unexpected errors.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import signal
from collections.abc import Callable
from typing import Any

from helpers.bench import diagnosis
from helpers.bench.schema import Summary
from helpers.core import machine

PLACEHOLDER_HINT = (
    "Replace the `...` in the cell above with your answer, run it, then run this cell."
)


class NotYet(Exception):  # a learner-facing name, not an error
    """Raised inside a checker: the answer is not right yet; the message is the hint."""


def report(correct: bool, message: str) -> bool:
    """Show the verdict (Markdown in a notebook, text elsewhere) and return ``correct``."""
    verdict = "✅ **Correct.**" if correct else "🔶 **Not yet.**"
    text = f"{verdict} {message}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return correct
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:  # a Jupyter kernel
        display(Markdown(text))
    else:  # a script, a terminal, a test
        print(text)
    return correct


def checker(fn: Callable[..., str]) -> Callable[..., bool]:
    """Turn ``fn(answer, ...) -> message`` (raising NotYet for hints) into a checker."""

    @functools.wraps(fn)
    def check(answer: Any, *args: Any, **kwargs: Any) -> bool:
        if answer is Ellipsis:
            return report(False, PLACEHOLDER_HINT)
        try:
            message = fn(answer, *args, **kwargs)
        except NotYet as hint:
            return report(False, str(hint))
        except Exception as error:  # a checker must never raise
            return report(False, f"Your answer could not be checked ({type(error).__name__}: "
                                 f"{error}). Check its type and try again.")
        return report(True, message)

    return check


def _number(answer: Any, what: str) -> float:
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise NotYet(f"{what} should be a number, but your answer is a "
                     f"{type(answer).__name__}: {answer!r}.")
    if math.isnan(answer):
        raise NotYet(f"{what} came out as NaN; check the calculation.")
    return float(answer)


# --- notebook 00 ---


@checker
def usable_cpus(answer: Any) -> str:
    """Exercise 00.1: how many worker processes should CPU-bound work use here?"""
    expected = machine.usable_cpus()
    value = _number(answer, "The worker count")
    if value == expected:
        return (f"This kernel may use {expected} CPU(s), so {expected} workers keep them all "
                "busy without making them take turns.")
    if value == (os.cpu_count() or 1):
        raise NotYet("`os.cpu_count()` counts the machine's CPUs, not the ones this process "
                     "may use: an affinity mask or a container quota can allow fewer. "
                     "Look at the card's *usable CPUs* row.")
    if value > expected:
        raise NotYet(f"{value:g} workers is more than this kernel can run at once: the extra "
                     "ones would only take turns. Which row of the machine card caps it?")
    raise NotYet(f"{value:g} workers would leave some usable CPUs idle. Look at the card's "
                 "*usable CPUs* row.")


@checker
def parallel_efficiency(answer: Any, result: Any) -> str:
    """Exercise 00.2: the parallel efficiency at the largest usable worker count."""
    top = max(p for p in result.workers if p <= result.usable_cpus)
    if top == 1:
        return "Only one worker was measured here, so efficiency is 1 by definition."
    speedup = result.speedups()[top].median
    expected = speedup / top
    value = _number(answer, "The efficiency")
    if abs(value - expected) <= 0.02:
        return (f"{top} workers gave {speedup:.2f}×, so each worker delivered "
                f"{expected:.0%} of a perfect share.")
    if abs(value - speedup) <= 0.02:
        raise NotYet("That is the speedup. Efficiency is speedup *per worker*: divide by the "
                     "number of workers.")
    if abs(value - 100 * expected) <= 2:
        raise NotYet("Close: write it as a fraction between 0 and 1 (0.9, not 90).")
    raise NotYet(f"Use the median speedup at {top} workers from `result.speedups()`, "
                 "and divide by the number of workers.")


@checker
def times_the_job(answer: Any) -> str:
    """Exercise 00.3: the learner's ``time_job(workers, units, tasks)`` with a process pool:
    it must return the seconds the whole job took (every result back), for any worker count."""
    from helpers.experiments import strong_scaling

    if not callable(answer):
        raise NotYet("Define `def answer_time_job(workers, units, tasks):` in the cell above.")
    try:
        run = strong_scaling.check_time_job(answer)
    except Exception as error:
        raise NotYet(f"Running it raised {type(error).__name__}: {error}") from None
    for workers, seconds in run.seconds.items():
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise NotYet(f"With {workers} worker(s) it returned {seconds!r}: return the seconds "
                         "the job took, a number (`time.perf_counter()` before and after).")
        if seconds < 0.5 * run.work_seconds / workers:
            raise NotYet(f"With {workers} worker(s) it says {seconds:.3f} s for "
                         f"{run.work_seconds:.2f} s of work: it stopped the clock before the "
                         "results were back. Collect every result (`list(pool.map(...))`) "
                         "inside the timed part.")
    one, top = run.seconds[1], max(run.seconds)
    speedup = one / run.seconds[top]
    return (f"Your loop timed {run.tasks} tasks: {one:.2f} s on 1 worker"
            + (f", {run.seconds[top]:.2f} s on {top}: {speedup:.2f}×." if top > 1 else ".")
            + " That is the whole scaling experiment; the course's version adds repeats, "
              "interleaving and traces around the same lines.")


# --- notebook 01 ---

#: Offload strategies that keep the loop responsive *and* run CPU work in parallel.
PARALLEL_OFFLOADS = ("WorkerPool", "ProcessPoolExecutor")


@checker
def responsive_and_parallel(answer: Any, runs: Any) -> str:
    """Exercise 01.1: the strategy that keeps the loop responsive and uses several CPUs.

    With the GIL on, only processes do both; with it off (as ``runs`` recorded it),
    ``to_thread`` does too.
    """
    gil_on = all(run.gil_enabled for run in runs)
    if not isinstance(answer, str):
        raise NotYet("Give the strategy's name as a string, e.g. \"inline\".")
    if answer in PARALLEL_OFFLOADS:
        return ("Processes have their own interpreter: the loop keeps its thread to "
                "itself, and the CPU tasks run side by side on other cores."
                + ("" if gil_on else " With the GIL off, `to_thread` does so too."))
    if answer == "to_thread" and not gil_on:
        return ("This kernel ran with the GIL off: the thread runs Python beside the loop, "
                "and the tasks run in parallel. (With the GIL on, only the process pools "
                "would; they are right here too.)")
    hints = {
        "inline": "Inline CPU work stops the loop completely: look at the worst lag.",
        "to_thread": "A thread keeps the loop alive, but with the GIL on (as in this run) "
                     "pure Python in the thread shares the GIL with the loop: requests slow "
                     "down and the CPU work is no faster.",
        "chunks": "Chunks keep the loop responsive, but all the work still runs on the loop's "
                  "one thread, one slice at a time.",
    }
    raise NotYet(hints.get(answer, "Choose one of the strategies in the plot above."))


@checker
def offloads_cpu_work(answer: Any) -> str:
    """Exercise 01.2: the learner's ``offload(pool, units)`` coroutine, run beside a
    heartbeat: right result, the loop kept beating, and the pool did the work."""
    from helpers.experiments import eventloop

    if not callable(answer):
        raise NotYet("Define `async def answer_offload(pool, units):` in the cell above.")
    if not inspect.iscoroutinefunction(answer):
        raise NotYet("Make it a coroutine function (`async def`), so the loop can `await` "
                     "it while the work runs elsewhere.")
    try:
        run = eventloop.check_offload(answer)
    except TimeoutError:
        raise NotYet("It did not finish within 30 s: does it wait for something that never "
                     "comes?") from None
    except Exception as error:
        raise NotYet(f"Your coroutine raised {type(error).__name__}: {error}") from None
    if run.returned != run.expected:
        raise NotYet(f"It returned {run.returned!r}, not the task's result: `return await "
                     "loop.run_in_executor(...)` hands back what the function returned.")
    if run.pool_tasks < 1:
        raise NotYet(f"The result is right, but the pool ran nothing (worst lag "
                     f"{run.worst_lag * 1000:.0f} ms): the work ran in this process. Pass "
                     "`pool` as the executor of `loop.run_in_executor`.")
    if run.worst_lag > 0.5 * run.cpu_seconds:
        raise NotYet(f"The loop was late by {run.worst_lag * 1000:.0f} ms while the "
                     f"{run.cpu_seconds:.2f} s task ran: something still blocked it. `await` "
                     "the future instead of waiting for it with `.result()`.")
    return (f"The task ran in the pool's worker for {run.cpu_seconds:.2f} s while the loop "
            f"stayed at most {run.worst_lag * 1000:.0f} ms late: that is the whole pattern, "
            "`await loop.run_in_executor(pool, fn, *args)`.")


# --- notebook 02 ---


@checker
def releases_gil(answer: Any) -> str:
    """Exercise 02.1: which of the course's CPU workloads release the GIL?"""
    from helpers.core.workloads import WORKLOADS

    cpu = {name for name, w in WORKLOADS.items() if not w.io_bound}
    expected = {name for name in cpu if WORKLOADS[name].releases_gil}
    if not isinstance(answer, (set, frozenset, list, tuple)):
        raise NotYet('Give a set of workload names, for example {"python", "zlib"}.')
    chosen = set(answer)
    unknown = chosen - cpu
    if unknown:
        raise NotYet(f"{sorted(unknown)} are not CPU workloads here; choose from {sorted(cpu)}.")
    if chosen == expected:
        return ("These run in C code that lets go of the GIL while it works, so threads run "
                "them side by side even with the GIL on. Pure-Python bytecode holds the GIL "
                "for every step, when there is one.")
    if "python" in chosen:
        raise NotYet("Pure-Python code never lets go of the GIL itself: the interpreter only "
                     "takes it away every few milliseconds. (On a kernel with the GIL off its "
                     "line rises anyway: there is no GIL to hold.)")
    missing = sorted(expected - chosen)
    raise NotYet(f"Some GIL-releasing workloads are missing: look again at {missing}.")


@checker
def race_fixed(answer: Any) -> str:
    """Exercise 02.2: the learner's ``add(counter, lock, increments)``, run on 4 threads at
    once: every increment must arrive, with the window (``time.sleep(0)``) still there."""
    from helpers.experiments import races

    if not callable(answer):
        raise NotYet("Define `def answer_add_safely(counter, lock, increments):` above.")
    try:
        source = inspect.getsource(answer)
    except (OSError, TypeError):
        source = ""
    if source and "sleep(0)" not in source:
        raise NotYet("Keep `time.sleep(0)` between the read and the write: it is what makes "
                     "the race show every time. Without it the race is rare, not gone.")
    try:
        result = races.run_adder(answer)
    except TimeoutError:
        raise NotYet("The threads had not finished after 10 s: is a thread waiting for a "
                     "lock nobody releases? `with lock:` releases it for you.") from None
    except Exception as error:
        raise NotYet(f"Your function raised {type(error).__name__}: {error}") from None
    if result.counted == 0:
        raise NotYet("The counter never moved: each time round the loop, read "
                     "`counter.value`, then write it back plus one.")
    if result.counted > result.expected:
        raise NotYet(f"{result.counted} arrived but only {result.expected} were added: add "
                     "exactly 1 each time round the loop.")
    if result.lost:
        raise NotYet(f"{result.lost} of {result.expected} increments were lost: another thread "
                     "still gets in between your read and your write. Hold the lock across "
                     "both: `with lock:` around the read, the sleep and the write.")
    return (f"All {result.expected} increments arrived, in {result.seconds:.3f} s: the lock "
            "keeps the read, the sleep and the write together, so no other thread can get "
            "in between.")


# --- notebook 03 ---


@checker
def module_function_under_spawn(answer: Any) -> str:
    """Exercise 03.1: the learner's module (written with ``%%writefile``), imported, and its
    ``square`` run by spawned workers: the fix for notebook functions under spawn."""
    from pathlib import Path

    from helpers.experiments import processes

    if not isinstance(answer, str) or not answer.endswith(".py"):
        raise NotYet("`answer_tasks` should be the path of the `.py` file you wrote.")
    if not Path(answer).is_file():
        raise NotYet(f"There is no file {answer}: run the `%%writefile` cell first.")
    try:
        results = processes.run_module_function(answer, "square", list(range(10)))
    except AttributeError:
        raise NotYet("The module has no function called `square`.") from None
    except SyntaxError as error:
        raise NotYet(f"The module does not parse: {error}") from None
    except TimeoutError:
        raise NotYet("The workers had not answered after 60 s: does `square` return?") from None
    except Exception as error:
        raise NotYet(f"Running it raised {type(error).__name__}: {error}") from None
    expected = [x * x for x in range(10)]
    if results != expected:
        raise NotYet(f"square(0..9) gave {results}, not {expected}: return x * x.")
    return ("Spawned workers imported your module by name and ran `square`: a function in a "
            "module is pickled as its module and name, which any new interpreter can import. "
            "This is the fix for every start method, 3.14's forkserver default included.")


@checker
def seeds_every_task(answer: Any) -> str:
    """Exercise 03.2: the learner's ``draws(pool, tasks, seed)``: one number per task from
    ``pitfalls.seeded_draw``, each task with its own seed made from ``seed``."""
    from helpers.experiments import processes

    if not callable(answer):
        raise NotYet("Define `def answer_draws(pool, tasks, seed):` in the cell above.")
    try:
        run = processes.check_seeded_draws(answer)
    except TimeoutError as error:
        raise NotYet(f"It did not finish: {error}. Does it wait for something that never "
                     "comes?") from None
    if run.error is not None:
        raise NotYet(f"Your function raised {type(run.error).__name__}: {run.error}")
    if run.first is None:
        raise NotYet("It returned None: return the list `pool.map(...)` gives back.")
    if len(run.first) != run.tasks or not all(
            isinstance(d, (tuple, list)) and len(d) == 2 for d in run.first):
        raise NotYet(f"Asked for {run.tasks} tasks, it returned {str(run.first)[:80]}: return "
                     "what `pitfalls.seeded_draw` gives for each task, a (pid, number) pair.")
    numbers = [number for _, number in run.first]
    if len(set(numbers)) == 1:
        raise NotYet(f"Every task drew {numbers[0]}: they all got the same seed. Give each "
                     "task its own: `np.random.SeedSequence(seed).spawn(tasks)` makes one "
                     "child seed per task.")
    repeats = processes.repeated_numbers([tuple(d) for d in run.first])
    if repeats:
        raise NotYet(f"{repeats} of {run.tasks} draws repeat another worker's number: the "
                     f"workers ({run.start_method}ed here) drew from copies of one generator. "
                     "Seed every task instead, with `pitfalls.seeded_draw`.")
    if [n for _, n in run.again] != numbers:
        raise NotYet(f"The same seed ({run.seed}) gave other numbers the second time: make the "
                     "task seeds *from* `seed` (`SeedSequence(seed).spawn(tasks)`), not from "
                     "the clock or fresh entropy, so a run can be repeated.")
    if [n for _, n in run.other] == numbers:
        raise NotYet("Another seed gave exactly the same numbers: build the task seeds from "
                     "the `seed` argument, not from a constant.")
    return (f"{run.tasks} different numbers from workers that were {run.start_method}ed from "
            "one parent, the same again for the same seed, and others for another: each task "
            "has its own generator, made from a child `SeedSequence`. That holds under every "
            "start method, and a run can be repeated.")


def chunk_bounds(task_seconds: float, tasks: int, message_seconds: float,
                 workers: int) -> tuple[int, int]:
    """The two rules for a chunk size: (smallest, largest). A message costs at most 5 % of
    a chunk's work; every worker gets at least 4 chunks. When they conflict (the smallest
    is above the largest) the overhead rule wins."""
    smallest = max(1, math.ceil(message_seconds / (0.05 * task_seconds)))
    largest = max(1, tasks // (4 * workers))
    return smallest, max(smallest, largest)


#: Jobs the learner's chunk-size function must size: (task seconds, tasks, message
#: seconds, workers), from a laptop to a 64-core server, including a conflict of rules.
CHUNK_CASES = ((0.0002, 2000, 50e-6, 2), (0.0002, 2000, 50e-6, 16), (0.01, 100, 50e-6, 4),
               (0.0001, 100, 100e-6, 8), (1.0, 3, 50e-6, 4), (0.0002, 100_000, 20e-6, 64))


@checker
def chunksize_rule(answer: Any, message_seconds: float, usable: int) -> str:
    """Exercise 03b.1: the learner's ``chunksize(task_seconds, tasks, message_seconds,
    workers)``, run on this machine's job and on :data:`CHUNK_CASES`."""
    if not callable(answer):
        raise NotYet("Define `def answer_chunksize(task_seconds, tasks, message_seconds, "
                     "workers):` in the cell above.")
    cases = ((0.0002, 2000, message_seconds, usable), *CHUNK_CASES)
    for task_seconds, tasks, message, workers in cases:
        job = (f"{tasks:,} tasks of {task_seconds * 1000:g} ms, {message * 1e6:.0f} µs a "
               f"message, {workers} workers")
        try:
            value = answer(task_seconds, tasks, message, workers)
        except Exception as error:
            raise NotYet(f"For {job} it raised {type(error).__name__}: {error}") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NotYet(f"For {job} it returned {value!r}: a chunk size is a whole number "
                         "(an `int`) of tasks, at least 1. `math.ceil` and `//` give ints.")
        smallest, largest = chunk_bounds(task_seconds, tasks, message, workers)
        if value < smallest:
            raise NotYet(f"For {job} it gave {value}: {value * task_seconds * 1e3:.2f} ms of "
                         f"work per message, so the message costs more than 5 % of it. At "
                         f"least message / (5 % × task) = {smallest}, rounded up.")
        if value > largest:
            conflict = smallest > max(1, tasks // (4 * workers))
            raise NotYet(f"For {job} it gave {value}: " + (
                f"when the two rules conflict, take the smallest chunk the overhead rule "
                f"allows ({smallest}), so the workers share what little there is."
                if conflict else
                f"{tasks / value:.1f} chunks for {workers} workers, fewer than 4 each. At "
                f"most tasks // (4 × workers) = {largest}."))
    smallest, largest = chunk_bounds(0.0002, 2000, message_seconds, usable)
    mine = answer(0.0002, 2000, message_seconds, usable)
    return (f"Right for all {len(cases)} jobs. For this machine's job (2,000 tasks of 0.2 ms, "
            f"{message_seconds * 1e6:.0f} µs a message, {usable} workers) it chose {mine}, "
            f"between {smallest} and {largest}. `map(..., chunksize=c)` and WorkerPool's "
            "automatic batching apply the same two rules.")


@checker
def serial_fraction(answer: Any, speedup: float, workers: int) -> str:
    """Exercise 03b.2: the Karp–Flatt serial fraction of a measured speedup."""
    if workers < 2:
        return ("Skipped: with one usable CPU there is no parallel run to estimate a serial "
                "fraction from. Look at the reference machines instead.")
    value = _number(answer, "The serial fraction")
    expected = (1 / speedup - 1 / workers) / (1 - 1 / workers)
    if math.isclose(value, expected, rel_tol=0.02, abs_tol=0.002):
        return (f"{expected:.3f}: Amdahl's law with this serial fraction predicts "
                f"{1 / (expected + (1 - expected) / 16):.1f}× on 16 CPUs, a model from "
                f"{workers} CPUs' worth of evidence.")
    if math.isclose(value, 1 - speedup / workers, rel_tol=0.02, abs_tol=0.002):
        raise NotYet("That is 1 − efficiency. Karp–Flatt is (1/S − 1/p) / (1 − 1/p).")
    raise NotYet("Use e = (1/S − 1/p) / (1 − 1/p) with S the measured speedup at p workers.")


# --- notebook 04 ---


@checker
def n_jobs_minus_one(answer: Any) -> str:
    """Exercise 04.1: how many workers ``n_jobs=-1`` starts on this machine."""
    import joblib

    expected = joblib.cpu_count()
    value = _number(answer, "The number of workers")
    if value == expected:
        return (f"{expected}: joblib counts CPUs the way the machine card does (affinity and "
                "container quota included), and n_jobs=-1 means all of them.")
    if value == -1:
        raise NotYet("-1 is what you pass, not what you get: how many workers start?")
    if value == (os.cpu_count() or 1):
        raise NotYet("os.cpu_count() counts the machine's CPUs; joblib counts the ones this "
                     "process may use.")
    raise NotYet("Call joblib.cpu_count(): n_jobs=-1 uses that many workers.")


@checker
def streams_results(answer: Any) -> str:
    """Exercise 04.2: the learner's generator, fed one 600 ms task and five of 20 ms: every
    result must arrive, and the quick ones well before the slow one."""
    from helpers.experiments import joblib_runs

    if not callable(answer):
        raise NotYet("Define `def answer_stream(items, n_jobs):` in the cell above.")
    try:
        results, spread = joblib_runs.check_stream(answer)
    except Exception as error:
        raise NotYet(f"Running it raised {type(error).__name__}: {error}") from None
    expected = [600, 20, 20, 20, 20, 20]
    if sorted(results) != sorted(expected):
        raise NotYet(f"It gave {results}; expected every task's result ({expected}, in any "
                     "order). Yield each one as it comes.")
    if spread < 0.25:
        raise NotYet(f"Every result arrived within {spread * 1000:.0f} ms of the others: "
                     "nothing was streamed. `return_as=\"generator_unordered\"` hands each "
                     "result over as it finishes; `\"generator\"` keeps the order, so the "
                     "quick results wait behind the slow first one.")
    return (f"The quick results came {spread * 1000:.0f} ms before the slow one: you can "
            "show progress, or start on each result, while the rest are still running.")


@checker
def one_blas_thread_per_worker(answer: Any) -> str:
    """Exercise 04.3: the learner's ``make_pool(workers)``: a pool whose every worker runs
    NumPy with one BLAS thread (the fix for workers × BLAS threads oversubscribing)."""
    from helpers.core import workloads
    from helpers.pool import WorkerPool

    if not callable(answer):
        raise NotYet("Define `def answer_pool(workers):` in the cell above.")
    try:
        pool = answer(2)
    except Exception as error:
        raise NotYet(f"Making the pool raised {type(error).__name__}: {error}") from None
    if not isinstance(pool, WorkerPool):
        raise NotYet(f"It returned {pool!r}: return the `WorkerPool` you made.")
    try:
        threads = set(pool.map(workloads.blas_threads, range(8), timeout=120))
    except Exception as error:
        raise NotYet(f"The workers failed: {type(error).__name__}: {error}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if threads != {1}:
        raise NotYet(f"The workers still run {max(threads)} BLAS thread(s) each: give the pool "
                     "an initializer that limits them, `initializer=workloads.limit_blas_threads, "
                     "initargs=(1,)` (threadpoolctl, once in each worker).")
    return ("Every worker runs its matrix products on one BLAS thread: N workers keep N CPUs "
            "busy, not N × (BLAS threads). joblib's `inner_max_num_threads` does the same for "
            "its workers.")


# --- notebook 05 ---


@checker
def median_queue_wait(answer: Any, records: Any) -> str:
    """Exercise 05.1: the median time tasks waited between submit and start, in seconds."""
    import statistics

    waits = [r.started - r.submitted for r in records]
    expected = statistics.median(waits)
    value = _number(answer, "The median wait")
    tolerance = max(1e-6, 0.01 * abs(expected))
    if abs(value - expected) <= tolerance:
        return (f"Half the tasks waited less than {expected * 1000:.2f} ms before a worker "
                "started them: that wait is the queue, not the work.")
    if abs(value - statistics.mean(waits)) <= tolerance:
        raise NotYet("That is the mean. A few long waits pull the mean up; use "
                     "`statistics.median`.")
    if abs(value - statistics.median(r.finished - r.started for r in records)) <= tolerance:
        raise NotYet("That is how long tasks *ran* (finished − started). The wait is "
                     "started − submitted.")
    if abs(value / 1000 - expected) <= tolerance:
        raise NotYet("Right quantity, wrong unit: the records are in seconds, not milliseconds.")
    raise NotYet("Compute `r.started - r.submitted` for every record, then take the median.")


# Exercise 05.2: 1 s, less some room for the pool to notice an overdue task and kill it.
LATEST_TASK_TIMEOUT = 0.95


@checker
def task_timeout_choice(answer: Any) -> str:
    """Exercise 05.2: healthy tasks take up to 0.2 s; a stuck one must go within 1 s."""
    value = _number(answer, "task_timeout")
    if value <= 0:
        raise NotYet("task_timeout must be a positive number of seconds.")
    if value <= 0.2:
        raise NotYet(f"With task_timeout={value:g}, a healthy 0.2 s task could be killed. "
                     "Leave room above the longest healthy task.")
    if value > 1.0:
        raise NotYet(f"With task_timeout={value:g}, a stuck task would hold its worker for more "
                     "than the 1 s allowed.")
    if value > LATEST_TASK_TIMEOUT:
        raise NotYet(f"With task_timeout={value:g}, a stuck task is killed only once {value:g} s "
                     "have passed, plus the moment the pool takes to notice and kill it, "
                     "which can take it past the 1 s allowed. Leave room below 1 s too "
                     f"({LATEST_TASK_TIMEOUT:g} s at most).")
    return (f"task_timeout={value:g} lets every healthy task finish and stops a stuck one within "
            "1 s. In production, set it from measured task times (the trace), with a margin.")


@checker
def replaces_dead_worker(answer: Any) -> str:
    """Exercise 05.3: the learner's ``_replace`` for step 4's pool, run against a killed
    worker and then a job with a crashing task (time limits; processes always stopped)."""
    from helpers.experiments import pools
    from helpers.pool.build_a_pool.step4_crashes import CrashSafePool

    if not (isinstance(answer, type) and issubclass(answer, CrashSafePool)):
        raise NotYet("Define `class AnswerPool(CrashSafePool):` with its own `_replace`.")
    if answer._replace is CrashSafePool._replace:
        raise NotYet("`AnswerPool` uses the course's `_replace`: write your own in the class.")
    run = pools.check_replace(answer)
    if run.problem:
        raise NotYet(f"{run.problem}. Fail the dead worker's future, then start a new "
                     "worker in its place; nothing in `_replace` needs to wait for long.")
    if run.task_error is None:
        raise NotYet("The dead worker's task never got a result or an error: call "
                     "`futures[dead[\"task\"]].set_exception(...)`, or its caller waits for "
                     "ever.")
    if run.dead_still_listed:
        raise NotYet("The dead worker is still in `self._workers`: put the new one "
                     "(`self._start()`) in its place, at the same index.")
    if not run.replacement_alive:
        raise NotYet("After `_replace` the pool has no live worker in that place: start one "
                     "with `self._start()`.")
    if run.crashed_task_error is None or len(run.job_results) != 3:
        raise NotYet("In a real job, the crashing task did not fail alone: check that each "
                     "worker's task is the one its future belongs to.")
    return (f"The killed worker's task failed with {type(run.task_error).__name__}, a new "
            "worker took its place, and in a job where one task killed its worker the other "
            "three still returned: one crash costs one task, which is all step 4 promises.")


# --- notebook 06 ---


@checker
def prefork_workers(answer: Any) -> str:
    """Exercise 06.1: worker processes for a CPU-bound route on this machine."""
    usable = machine.usable_cpus()
    value = _number(answer, "The number of workers")
    if value == usable:
        return (f"{usable} workers, one per usable CPU: more only take turns on the same "
                "CPUs (the throughput plot's flat part), fewer leave CPUs idle.")
    if value == (os.cpu_count() or 1) and value != usable:
        raise NotYet(f"os.cpu_count() says {value:g}, but this process may use only "
                     f"{usable} CPUs (affinity or container quota): use the usable count.")
    if value == 2 * usable + 1:
        raise NotYet("2 × CPUs + 1 is gunicorn's rule of thumb for workers that also wait on "
                     "I/O; for a purely CPU-bound route, look at where the throughput stops "
                     "growing.")
    if value > usable:
        raise NotYet("Past the usable CPUs the throughput stopped growing in the plot: the "
                     "extra workers only take turns.")
    raise NotYet("Fewer workers than CPUs leave CPUs idle; look at the throughput plot.")


@checker
def throughput_ceiling(answer: Any, usable: int, ms: float) -> str:
    """Exercise 06.2: the most requests/s ``usable`` CPUs can serve at ``ms`` per request."""
    value = _number(answer, "The ceiling in requests/s")
    expected = usable * 1000 / ms
    if math.isclose(value, expected, rel_tol=0.01):
        return (f"{usable} CPUs × (1000 ms / {ms:g} ms) = {expected:.0f} requests/s: each CPU "
                f"finishes one request every {ms:g} ms, whatever the server.")
    if math.isclose(value, 1000 / ms, rel_tol=0.01):
        raise NotYet("That is one CPU's worth. How many CPUs can work at once?")
    if math.isclose(value, usable * ms, rel_tol=0.01) or math.isclose(value, ms / usable,
                                                                        rel_tol=0.01):
        raise NotYet("Check the units: one request takes ms/1000 seconds of one CPU.")
    raise NotYet("One CPU finishes 1000/ms requests per second; multiply by the CPUs.")


GUNICORN_SETTINGS = ("workers", "timeout", "max_requests", "max_requests_jitter")


@checker
def gunicorn_config(answer: Any) -> str:
    """Exercise 06.3: gunicorn settings for this machine, then gunicorn started with them
    and loaded (Unix only; the server is always stopped)."""
    from helpers.servers import gunicorn_run, prefork

    if not isinstance(answer, dict) or set(answer) != set(GUNICORN_SETTINGS):
        raise NotYet(f"Give a dict with exactly these keys: {', '.join(GUNICORN_SETTINGS)}.")
    values = {key: answer[key] for key in GUNICORN_SETTINGS}
    if any(v is Ellipsis for v in values.values()):
        raise NotYet("Fill in every `...`.")
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise NotYet(f"{key} should be a whole number, not {value!r}.")
    usable = machine.usable_cpus()
    if values["workers"] != usable:
        extra = (" 2 × cores + 1 is gunicorn's rule for workers that also wait on I/O."
                 if values["workers"] == 2 * usable + 1 else "")
        raise NotYet(f"{values['workers']} workers for a CPU-bound app on {usable} usable "
                     f"CPU(s)? One per usable CPU keeps them all busy without taking turns."
                     f"{extra}")
    if not 2 < values["timeout"] <= 60:
        raise NotYet(f"timeout={values['timeout']}: gunicorn kills a sync worker whose request "
                     "runs longer than this. Give the slowest healthy request (2 s) room, but "
                     "not so much that a stuck worker is gone for minutes: a few times 2 s.")
    if values["max_requests"] < 100:
        raise NotYet("max_requests below 100 restarts workers so often that starting them "
                     "costs more than the leak: a few hundred to thousands is usual.")
    if not 1 <= values["max_requests_jitter"] <= values["max_requests"] // 2:
        raise NotYet("max_requests_jitter spreads the restarts so workers do not all restart "
                     "at the same moment: give it a number above 0 and at most half of "
                     "max_requests.")
    reason = gunicorn_run.available()
    if reason is not None:
        return (f"These settings are right for {usable} usable CPU(s). (Not started here: "
                f"{reason}.)")
    with gunicorn_run.GunicornServer(workers=usable, timeout=values["timeout"],
                                     max_requests=values["max_requests"],
                                     max_requests_jitter=values["max_requests_jitter"]) as server:
        result = prefork.load(server.url + "/whoami", requests=200, concurrency=4,
                              max_seconds=30)
    if result.failures:
        raise NotYet(f"gunicorn started with them, but {result.failures} of {result.requests} "
                     f"requests failed ({result.failure_kinds()}).")
    return (f"gunicorn started with your settings on {usable} worker(s) and answered all "
            f"{result.requests} requests, from {len(set(result.pids))} worker process(es) "
            "(more than the workers once a worker reached max_requests and was replaced).")


# --- notebook 07 ---


@checker
def shares_through_memory(answer: Any) -> str:
    """Exercise 07.1: the learner's ``share(data, pool)``: a segment created, filled, handed
    to a worker by name, then closed and unlinked by its creator."""
    from helpers.experiments import shm_ownership

    if not callable(answer):
        raise NotYet("Define `def answer_share(data, pool):` in the cell above.")
    run = shm_ownership.check_hand_over(answer)
    if run.problem:
        raise NotYet(f"{run.problem}.")
    if not run.created:
        raise NotYet("No segment was created through `shared_memory.SharedMemory(create=True, "
                     "size=...)`: create one, as the skeleton does.")
    if run.worker_tasks < 1:
        raise NotYet("The pool ran nothing: submit `transfer.checksum_segment` to `pool`, "
                     "with the segment's *name* (`segment.name`) and the size.")
    if run.returned != run.expected:
        raise NotYet(f"It returned {run.returned!r}, not the checksum of the data: return "
                     "what the worker's future gives back (`.result()`), and copy the data "
                     "into `segment.buf` first.")
    if not run.unlinked:
        raise NotYet("The result is right, but the segment was never unlinked: it would stay "
                     "in memory after your program ends (until a reboot, or the resource "
                     "tracker's warning). Its creator unlinks it, in the `finally`.")
    if set(run.created) - set(run.closed):
        raise NotYet("Unlinked, but not closed: `segment.close()` releases this process's "
                     "mapping; call it before `unlink()`.")
    return ("The worker got only a name and read the bytes in place; the creator closed and "
            "unlinked the segment in `finally`, so nothing is left behind even if the task "
            "fails.")


UNLINK_CHOICES = ("the process that created it", "every process that attached to it",
                  "the last process to use it", "nobody: the OS frees it")


@checker
def who_unlinks(answer: Any) -> str:
    """Exercise 07.2: who must unlink a shared-memory segment."""
    if answer not in UNLINK_CHOICES:
        raise NotYet(f"Answer with one of these strings: {list(UNLINK_CHOICES)}.")
    if answer == UNLINK_CHOICES[0]:
        return ("Its creator (owner), in a `finally`: everyone else only `close()`s. Unlinking "
                "removes the name; the memory goes when the last process detaches.")
    if answer == UNLINK_CHOICES[1]:
        raise NotYet("Unlink removes the *name*: after the first unlink the others cannot "
                     "attach any more. Everyone closes; only one process unlinks.")
    if answer == UNLINK_CHOICES[2]:
        raise NotYet("Nothing tells a process it is the last one, and a crashed worker never "
                     "gets the chance: ownership has to be decided in advance.")
    raise NotYet("A segment outlives every process that used it until someone unlinks it: "
                 "that is how /dev/shm fills up.")


# --- notebook 08 ---


@checker
def drains_on_sigterm(answer: Any) -> str:
    """Exercise 08.1: the learner's job script (written with ``%%writefile``), run as its
    own program and sent SIGTERM while tasks run: they finish, the queue is dropped, the
    job exits 0 and leaves no worker behind."""
    from helpers.experiments import production_patterns

    if not isinstance(answer, str):
        raise NotYet("`answer_job` should be the path the `%%writefile` cell wrote.")
    run = production_patterns.check_drain(answer)
    if run.problem:
        output = f" It printed: `{run.output.strip()[-300:]}`" if run.output.strip() else ""
        raise NotYet(f"{run.problem[0].upper()}{run.problem[1:]}.{output}")
    if run.finished >= run.tasks:
        raise NotYet(f"All {run.tasks} tasks ran to the end: SIGTERM did not stop the job. In "
                     "the handler, shut the pool down with `cancel_futures=True` (the queued "
                     "tasks go), then leave with `sys.exit(0)`.")
    if run.exit_code == -signal.SIGTERM:
        raise NotYet("The job died of SIGTERM itself: no handler of yours ran to the end. "
                     "Install it with `signal.signal(signal.SIGTERM, on_sigterm)`, as the "
                     "skeleton does.")
    if run.exit_code != 0:
        raise NotYet(f"The job exited with status {run.exit_code}: after the shutdown, leave "
                     "with `sys.exit(0)`, so the orchestrator sees a clean stop.")
    if run.finished < run.running_at_sigterm:
        raise NotYet(f"Only {run.finished} of the {run.running_at_sigterm} tasks that were "
                     "running finished: `shutdown(wait=True)` lets them end before you leave.")
    if run.workers_left:
        raise NotYet(f"{run.workers_left} worker process(es) were still alive after the job "
                     "left: shut the pool down before exiting.")
    return (f"SIGTERM came with {run.running_at_sigterm} tasks running: {run.finished} "
            f"finished, the other {run.tasks - run.finished} were dropped before they "
            "started, the job exited 0 and left no worker behind. That is what a Kubernetes "
            "or systemd stop needs within its grace period.")


@checker
def recycle_every(answer: Any, leak_mib_per_task: float, budget_mib: float = 50.0) -> str:
    """Exercise 08.2: the largest max_tasks_per_child that keeps growth within the budget."""
    value = _number(answer, "max_tasks_per_child")
    best = max(1, math.floor(budget_mib / leak_mib_per_task))
    if value != int(value) or value < 1:
        raise NotYet("max_tasks_per_child is a whole number of tasks, at least 1.")
    if value > best:
        raise NotYet(f"After {int(value)} tasks a worker would have grown by about "
                     f"{value * leak_mib_per_task:.0f} MiB, over the {budget_mib:g} MiB allowed.")
    if value < best / 2:
        raise NotYet(f"{int(value)} stays within the budget, but restarts workers more often than "
                     "needed, and each restart costs a process start. How many tasks fit?")
    return (f"{int(value)} (the most is {best}): {budget_mib:g} MiB ÷ {leak_mib_per_task:.1f} MiB "
            "per task. Recycling hides a leak; it does not fix it.")


@checker
def advised_choice(answer: Any, advice: Any) -> str:
    """Exercise 08b.1: what ``helpers.advise`` recommends for the exercise's job."""
    from helpers.experiments.advisor import CHOICES

    if answer not in CHOICES:
        raise NotYet(f"Answer with one of {list(CHOICES)} (a string).")
    if answer == advice.choice:
        return f"{answer}. The model's reasons:\n\n" + "\n".join(f"- {r}" for r in advice.reasons)
    speedups = advice.predicted_speedups
    raise NotYet(f"The model predicts {speedups[answer]:.2f}× for {answer}. What does each task "
                 "carry, and what does sending it cost next to the work?")


# --- notebook 09 ---


@checker
def runs_on_dask(answer: Any) -> str:
    """Exercise 09.1: the learner's ``run(fn, items)``, called with a task that reports its
    pid, beside a LocalCluster of the checker's own: every task must run on a Dask worker."""
    import os

    from helpers.experiments import dask_runs

    if not callable(answer):
        raise NotYet("Define `def answer_on_dask(fn, items):` in the cell above.")
    try:
        returned, dask_pids = dask_runs.check_on_dask(answer)
    except Exception as error:
        raise NotYet(f"Running it raised {type(error).__name__}: {error}") from None
    if len(returned) != 8:
        raise NotYet(f"It returned {len(returned)} result(s) for 8 items: return what "
                     "`Parallel(...)(...)` gives back.")
    where = set(returned)
    if where <= {os.getpid()}:
        raise NotYet("Every task ran in this kernel: joblib fell back to running them here. "
                     "Choose the backend around the call: `with parallel_config(backend="
                     "\"dask\"):`.")
    if not where <= set(dask_pids):
        raise NotYet("The tasks ran in other processes, but not on the Dask workers (loky's, "
                     "probably): the backend to ask for is \"dask\".")
    return (f"All 8 tasks ran on the cluster's {len(where)} worker process(es), from the same "
            "`Parallel(...)(delayed(fn)(x) for x in items)` line as on loky: only the "
            "backend around it changed.")


@checker
def scatters_once(answer: Any) -> str:
    """Exercise 09.2: the learner's ``scatter_job(client, payload, tasks)``, on a fresh
    cluster: every task's result right, the payload scattered, never sent with a task."""
    from helpers.experiments import dask_runs

    if not callable(answer):
        raise NotYet("Define `def answer_scatter(client, payload, tasks):` in the cell above.")
    try:
        run = dask_runs.check_scatter(answer)
    except Exception as error:
        raise NotYet(f"Running it raised {type(error).__name__}: {error}") from None
    if run.returned != [run.expected] * 6:
        raise NotYet(f"It returned {run.returned[:3]}…, not six checksums of the payload: "
                     "`return client.gather(futures)`.")
    if run.big_arguments:
        raise NotYet(f"{run.big_arguments} task(s) carried the payload itself: pass the future "
                     "`client.scatter` gave you, not the bytes.")
    if not run.scatters:
        raise NotYet("The payload never went through `client.scatter`.")
    return ("The payload went to the cluster once; each task got only a future naming it, "
            "and the workers read it where it already was. Across a network, that is the "
            "difference between sending it once and once per task.")


# --- notebook 10 ---


@checker
def break_even_task_ms(answer: Any, document: Any) -> str:
    """Exercise 10.1: the shortest task that reached 80 % efficiency on ProcessPoolExecutor."""
    table = Summary.from_json(document["summary"]).task_size
    points = table.efficiency.get("ProcessPoolExecutor", {})  # {task ms: efficiency}
    if not points:
        raise NotYet("Run the task-size part of the benchmark first (the cell above it).")
    expected = table.break_even_ms("ProcessPoolExecutor", 0.8)
    if answer is None:
        if expected is None:
            return "Right: no task size you measured reached 80 % on this machine."
        raise NotYet(f"One size did reach 80 %: look for the first efficiency of 0.8 or more "
                     f"in {_efficiencies(points)}.")
    value = _number(answer, "The task duration in ms")
    if expected is not None and math.isclose(value, expected):
        return (f"Tasks of {expected:g} ms reached {points[expected]:.0%}. "
                "Shorter tasks than that should be batched.")
    if expected is None:
        raise NotYet("None of the sizes reached 0.8 here; the answer is `None`.")
    key = _key(points, value)
    if key is None:
        sizes = ", ".join(f"{ms:g}" for ms in sorted(points))
        raise NotYet(f"Pick one of the measured sizes (ms): {sizes}.")
    if points[key] < 0.8:
        raise NotYet(f"At {key:g} ms the efficiency was only {points[key]:.0%}, below 80 %.")
    raise NotYet(f"{key:g} ms reaches 80 %, but a shorter size does too: "
                 f"{_efficiencies(points)}.")


def _key(points: dict[float, float], ms: float) -> float | None:
    """The measured size (ms) equal to ``ms``, allowing for float rounding."""
    return next((k for k in points if math.isclose(k, ms)), None)


def _efficiencies(points: dict[float, float]) -> str:
    return ", ".join(f"{ms:g} ms: {points[ms]:.2f}" for ms in sorted(points))


@checker
def top_cause(answer: Any, document: Any) -> str:
    """Exercise 10.2: the first thing to fix on a colleague's machine (a cause id)."""
    findings = diagnosis.why_no_speedup(document)
    causes = [f.cause for f in findings]
    allowed = diagnosis.CAUSE_IDS
    if not isinstance(answer, str):
        raise NotYet(f"Answer with one of these strings: {', '.join(allowed)}.")
    if causes and answer == causes[0]:
        return f"{findings[0].title}. {findings[0].fix}"
    if answer in causes:
        raise NotYet(f"{answer!r} is a real finding here, but not the biggest: with it "
                     "fixed, could the machine run anything in parallel at all?")
    raise NotYet(f"Nothing in the colleague's numbers shows {answer!r}. Read the machine "
                 f"card first (usable CPUs), then the speedups. Choose from: "
                 f"{', '.join(allowed)}.")


def _spread_of(name: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise NotYet(f"For {name!r} it returned {value!r}: return a tuple "
                     "`(median, fastest, slowest)` for every configuration.")
    median, fastest, slowest = (_number(v, f"Each time for {name!r}") for v in value)
    if not fastest <= median <= slowest:
        raise NotYet(f"For {name!r} it returned median {median:.4f}, fastest {fastest:.4f}, "
                     f"slowest {slowest:.4f} s: the order is `(median, fastest, slowest)`, "
                     "and the median lies between the other two.")
    return median, fastest, slowest


def _still_running(time_limit: float) -> str:
    """The hint for learner code that had not returned within the checker's time limit."""
    return (f"It had not returned after {time_limit:g} s: does a loop never end? (It may "
            "still be running in the background: restart the kernel, Kernel → Restart, "
            "before you try again.)")


@checker
def side_by_side(answer: Any, time_limit: float = 10.0) -> str:
    """Exercise 10.3: the learner's ``side_by_side(configurations, repeats)``: every
    configuration called ``repeats`` times, interleaved and rotated, each timed and
    summed up as ``(median, fastest, slowest)``."""
    from helpers.experiments import side_by_side as harness

    if not callable(answer):
        raise NotYet("Define `def answer_side_by_side(configurations, repeats):` above.")
    try:
        run = harness.check_side_by_side(answer, time_limit=time_limit)
    except TimeoutError:
        raise NotYet(_still_running(time_limit)) from None
    if not run.calls:
        raise NotYet("It never called a configuration: in each round, call "
                     "`configurations[name]()` for every name, and time each call."
                     + (f" (It raised {type(run.error).__name__}: {run.error}.)"
                        if run.error else ""))
    if run.error is not None:
        raise NotYet(f"Your function raised {type(run.error).__name__}: {run.error}")
    counts = {name: run.calls.count(name) for name in run.names}
    if any(count != run.repeats for count in counts.values()):
        raise NotYet(f"Asked for {run.repeats} repeats, it called "
                     + ", ".join(f"{name!r} {count}×" for name, count in counts.items())
                     + ": call every configuration once per round, `repeats` rounds.")
    rounds = run.rounds()
    if any(sorted(one) != sorted(run.names) for one in rounds):
        raise NotYet(f"It ran {' '.join(run.calls[:2 * len(run.names)])} …: one configuration "
                     "after another, so a slow minute on this machine would hit only one of "
                     "them. Interleave: every round calls each configuration once.")
    if len({one[0] for one in rounds}) == 1:
        raise NotYet(f"Every round started with {rounds[0][0]!r}: rotate the order (A B C, "
                     "B C A, C A B …) so no configuration always runs first, when caches "
                     "are cold or the CPU clock is still rising.")
    returned = run.returned
    if not isinstance(returned, dict) or set(returned) != set(run.names):
        raise NotYet(f"It returned {returned!r}: return a dict with one entry per "
                     f"configuration ({', '.join(run.names)}).")
    for name in run.names:
        median, fastest, slowest = _spread_of(name, returned[name])
        own = sorted(run.own_seconds[name])
        if median < own[len(own) // 2] - 1e-6 or fastest < own[0] - 1e-6:
            raise NotYet(f"For {name!r} you report {median * 1000:.1f} ms, less than the "
                         f"{own[len(own) // 2] * 1000:.1f} ms that configuration took by its "
                         "own clock: are the times stored under the right name, and is the "
                         "clock read just before and just after each call?")
        if median > 0.003 + 1.25 * own[len(own) // 2]:
            raise NotYet(f"For {name!r} you report {median * 1000:.1f} ms, but that "
                         f"configuration took {own[len(own) // 2] * 1000:.1f} ms by its own "
                         "clock: is the clock read just before each call (not once per "
                         "round), are the times in seconds, and is each stored under the "
                         "right name?")
        if slowest < own[-1] - 1e-6:
            raise NotYet(f"For {name!r} the slowest time you report is shorter than its "
                         "slowest call: keep every repeat's time, not only the last ones.")
    longest = returned["long"][0] * 1000
    return (f"Every configuration ran {run.repeats} times, in rotated rounds "
            f"({' '.join(rounds[1])} in the second), and the medians put 'long' at "
            f"{longest:.1f} ms. This loop is `helpers.core.measure.interleaved` in a few "
            "lines: use it for every comparison you make at work.")


# --- notebook 06b ---

#: How long the learner's bounded-offload code may take in the checker, in seconds.
OFFLOAD_CHECK_SECONDS = 30.0


def _run_offload_trials(fn: Any) -> dict[str, Any]:
    """Drive ``fn(ms, pool, gate)`` as the app would, in a loop of its own, with a real
    WorkerPool of 2; always shut the pool down. Returns what happened."""
    import asyncio
    import inspect

    from helpers.core import config, watchdog
    from helpers.pool import WorkerPool
    from helpers.servers.web_app import Busy, Gate

    class Tracked(Gate):  # records the most in flight at once, whatever the code does
        def __setattr__(self, name: str, value: Any) -> None:
            super().__setattr__(name, value)
            if name == "in_flight" and isinstance(value, int):
                super().__setattr__("peak", max(getattr(self, "peak", 0), value))

    outcome: dict[str, Any] = {}
    pool = WorkerPool(2, mp_context=config.mp_context(), initializer=watchdog.worker_setup)

    async def call(ms: Any, gate: Any) -> Any:
        value = fn(ms, pool, gate)
        return await value if inspect.isawaitable(value) else value

    async def trials() -> None:
        gate = Tracked(limit=2)
        burst = await asyncio.gather(*(call(150, gate) for _ in range(6)),
                                     return_exceptions=True)
        outcome["burst"] = burst
        outcome["busy"] = sum(isinstance(r, Busy) for r in burst)
        outcome["ok"] = sum(isinstance(r, int) and not isinstance(r, bool) for r in burst)
        outcome["errors"] = [r for r in burst if isinstance(r, BaseException)
                             and not isinstance(r, Busy)]
        outcome["peak_after_burst"], outcome["left_after_burst"] = gate.peak, gate.in_flight
        failing = Tracked(limit=2)
        try:
            await call("not a number", failing)  # burn_cpu raises in the worker
            outcome["failure_raised"] = False
        except Busy:
            outcome["failure_raised"] = "busy"
        except Exception:
            outcome["failure_raised"] = True
        outcome["left_after_failure"] = failing.in_flight

    def runner() -> None:
        try:
            asyncio.run(asyncio.wait_for(trials(), OFFLOAD_CHECK_SECONDS))
        except BaseException as error:  # shown as a hint
            outcome["crashed"] = error

    import threading

    thread = threading.Thread(target=runner, name="check-bounded-offload", daemon=True)
    try:
        thread.start()
        thread.join(OFFLOAD_CHECK_SECONDS + 5)
        if thread.is_alive():
            outcome["hung"] = True
    finally:
        pool.shutdown(wait=not outcome.get("hung"), cancel_futures=True)
    return outcome


@checker
def bounded_offload(answer: Any) -> str:
    """Exercise 06b.1: the bounded-offload endpoint's core, run for real: six requests at
    once against a gate of 2 (2 run, 4 get Busy), then one whose task fails."""
    import inspect

    if not callable(answer):
        raise NotYet("`answer_offload` should be your function `bounded_offload` "
                     "(the name, without calling it).")
    try:
        inspect.signature(answer).bind(1, None, None)
    except TypeError:
        raise NotYet("The function takes three arguments: `(ms, pool, gate)`.") from None
    if not inspect.iscoroutinefunction(answer):
        raise NotYet("Make it `async def`: the endpoint runs on the event loop and must "
                     "`await` the pool, not wait for it.")
    outcome = _run_offload_trials(answer)
    if outcome.get("hung"):
        raise NotYet(f"Your function did not finish within {OFFLOAD_CHECK_SECONDS:.0f} s. "
                     "Does something wait for ever (a lock, a loop)?")
    if "crashed" in outcome:
        error = outcome["crashed"]
        raise NotYet(f"Running it failed: {type(error).__name__}: {error}")
    burst = outcome["burst"]
    if all(r is None for r in burst) and outcome["peak_after_burst"] == 0:
        raise NotYet("Your function returns nothing yet: fill in the three steps (check the "
                     "gate, count in, await the pool and count out).")
    if outcome["errors"]:
        error = outcome["errors"][0]
        raise NotYet(f"Some requests failed with {type(error).__name__}: {error}. Use "
                     "`await pool.submit_async(burn_cpu, ms)` and raise `Busy()` when full.")
    if outcome["ok"] == 6:
        if outcome["peak_after_burst"] <= 1:
            raise NotYet("All six requests ran, one after another: your function never let "
                         "two be in flight at once. Does it block the event loop (e.g. "
                         "`pool.submit(...).result()`) instead of `await`ing the pool?")
        raise NotYet("All six requests ran although the gate's limit is 2: check "
                     "`gate.in_flight` against `gate.limit` and raise `Busy()` when full.")
    if outcome["ok"] == 3 and outcome["busy"] == 3:
        raise NotYet("Three got through a gate of two: an off-by-one. Shed when "
                     "`gate.in_flight >= gate.limit`, before counting the request in.")
    if outcome["ok"] != 2 or outcome["busy"] != 4:
        raise NotYet(f"Of six requests at once against a limit of 2, {outcome['ok']} ran and "
                     f"{outcome['busy']} got Busy; expected 2 and 4. Check, then count in, "
                     "before the first `await`.")
    if outcome["left_after_burst"] != 0:
        raise NotYet(f"After every request had finished, the gate still counted "
                     f"{outcome['left_after_burst']} in flight: count each request out "
                     "when it is done.")
    if outcome["failure_raised"] is not True:
        raise NotYet("A request whose task fails should fail too (let the exception "
                     "propagate; the endpoint turns it into a 503).")
    if outcome["left_after_failure"] != 0:
        raise NotYet("When the task failed, its place in the gate was never given back: "
                     "after a few failures the app would shed *everything*. Count out in a "
                     "`finally:` block.")
    return ("Two ran in the pool while the loop stayed free, four were turned away at once "
            "(the app answers them 503 with Retry-After), and a failing task gave its place "
            "back. That is `web_app.bounded_offload`, which the app's /cpu_offload uses.")


@checker
def shed_count(answer: Any, rows: Any) -> str:
    """Exercise 06b.2: how many requests the shedding app answered 503 above saturation."""
    from helpers.experiments.web_stack import _pick

    if not rows:
        raise NotYet("There is no shedding run to check against: section 2 did not run on "
                     "this machine (its cell printed why).")
    shed = _pick(rows, shed=True, level="above")
    queue = _pick(rows, shed=False, level="above")
    value = _number(answer, "The number of 503s")
    if value == shed["http_503"]:
        return (f"{shed['http_503']} requests were told 503 at once, so the "
                f"{shed['ok']} accepted ones kept a p99 of {shed['p99_ms']:.0f} ms "
                f"(the queueing app: {queue['p99_ms']:.0f} ms).")
    if value == shed["ok"]:
        raise NotYet("That is how many were answered 200. Look at `http_503`.")
    if value == queue["http_503"]:
        raise NotYet("That is the app *without* shedding (it never answers 503). "
                     "Pick the row with `shed=True` and `level='above'`.")
    raise NotYet("Find the row of `shed_rows` with `shed=True` and `level='above'` and "
                 "read its `http_503`.")


# --- notebook 08b ---


@checker
def vectorised_assignment(answer: Any, time_limit: float = 20.0) -> str:
    """Exercise 08b.2: the learner's ``nearest(points, centres)`` in NumPy: the same labels
    as the Python loops, and much faster."""
    import numpy as np

    from helpers.experiments import serial_first

    if not callable(answer):
        raise NotYet("Define `def answer_nearest(points, centres):` in the cell above.")
    try:
        run = serial_first.check_assignment(answer, time_limit=time_limit)
    except TimeoutError:
        raise NotYet(_still_running(time_limit)) from None
    if run.error is not None:
        raise NotYet(f"Your function raised {type(run.error).__name__}: {run.error}")
    try:
        labels = np.asarray(run.returned)
    except (TypeError, ValueError):
        labels = None
    if run.returned is None or labels is None or labels.shape != (run.points,):
        shape = getattr(labels, "shape", None)
        raise NotYet(f"It returned {str(run.returned)[:60]!r}"
                     + (f" (shape {shape})" if shape else "")
                     + f": return one label per point, an array of shape ({run.points},).")
    wrong = int((labels != np.asarray(run.expected)).sum())
    if wrong:
        raise NotYet(f"{wrong:,} of {run.points:,} labels differ from the Python loops': for "
                     "each point (a row), take the index of the smallest squared distance "
                     "over the centres (the columns): `.argmin(axis=1)`.")
    if run.speedup < 5:
        raise NotYet(f"Right labels, but {run.answer_seconds * 1000:.0f} ms against "
                     f"{run.python_seconds * 1000:.0f} ms for the Python loops "
                     f"({run.speedup:.1f}×): it still visits the points one at a time in "
                     "Python. Let broadcasting build the whole (n, k) table of distances: "
                     "`points[:, 0:1] - centres[:, 0]` is an (n, 1) column minus a row of k.")
    return (f"The same {run.points:,} labels in {run.answer_seconds * 1000:.1f} ms, against "
            f"{run.python_seconds * 1000:.0f} ms for the Python loops: {run.speedup:.0f}× on "
            "one CPU, with no worker process to start, feed or stop.")
