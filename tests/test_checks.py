"""Each checker: the solution passes, the placeholder fails, plausible wrong answers get hints."""

import math
import threading
from pathlib import Path

import pytest

from helpers.core import machine
from helpers.core.measure import Measurement
from helpers.experiments.strong_scaling import ScalingResult
from helpers.view import checks

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"


def run_solution(name: str, namespace: dict) -> dict:
    exec(compile((SOLUTIONS / name).read_text(), name, "exec"), namespace)
    return namespace


def fake_result(speedup_at_2=1.8):
    measurements = [
        Measurement("scaling", "process", 1, "python", 0.02, 8, 0, 1.0, "fork", "quick", "t"),
        Measurement("scaling", "process", 2, "python", 0.02, 8, 0, 1 / speedup_at_2, "fork",
                    "quick", "t"),
        Measurement("scaling", "process", 4, "python", 0.02, 8, 0, 0.5, "fork", "quick", "t"),
    ]
    return ScalingResult("python", "process", "fork", 0.02, 8, 2, measurements)


def shown(capsys):
    return capsys.readouterr().out


# --- the base ---

def test_placeholder_is_not_yet(capsys):
    assert checks.usable_cpus(...) is False
    assert "Replace the `...`" in shown(capsys)


def test_a_checker_never_raises(capsys):
    assert checks.parallel_efficiency(0.9, result=None) is False
    assert "could not be checked" in shown(capsys)
    assert checks.usable_cpus("two") is False
    assert "should be a number" in shown(capsys)


# --- exercise 00.1 ---

def test_usable_cpus_solution_passes(capsys):
    namespace = run_solution("00_usable_cpus.py", {"card": machine.machine_card()})
    assert checks.usable_cpus(namespace["answer_workers"]) is True
    assert "Correct" in shown(capsys)


def test_usable_cpus_rejects_cpu_count_when_the_kernel_is_restricted(monkeypatch, capsys):
    import os
    monkeypatch.setattr(machine, "usable_cpus", lambda root="/": 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert checks.usable_cpus(8) is False
    assert "os.cpu_count()" in shown(capsys)


def test_usable_cpus_rejects_too_many(capsys):
    assert checks.usable_cpus(machine.usable_cpus() * 4) is False
    assert "take turns" in shown(capsys)


# --- exercise 00.2 ---

def test_efficiency_solution_passes(capsys):
    result = fake_result(1.8)
    namespace = run_solution("00_parallel_efficiency.py", {"result": result})
    assert namespace["answer_efficiency"] == pytest.approx(0.9)
    assert checks.parallel_efficiency(namespace["answer_efficiency"], result) is True


@pytest.mark.parametrize(("answer", "hint"), [
    (1.8, "That is the speedup"),
    (90, "fraction between 0 and 1"),
    (0.5, "divide by the number of workers"),  # efficiency at the oversubscribed 4
])
def test_efficiency_wrong_answers_get_hints(capsys, answer, hint):
    assert checks.parallel_efficiency(answer, fake_result(1.8)) is False
    assert hint in shown(capsys)


# --- notebook 05 ---

def fake_records():
    from helpers.core.trace import TaskRecord
    return [TaskRecord(i, "pid 1", 0.0, 0.01 * i, 0.01 * i + 0.005) for i in range(5)]


def test_median_queue_wait_solution_passes(capsys):
    records = fake_records()
    namespace = run_solution("05_median_queue_wait.py", {"records": records})
    assert checks.median_queue_wait(namespace["answer_wait"], records) is True


@pytest.mark.parametrize(("answer", "hint"), [
    (0.005, "how long tasks *ran*"),
    (25.0, "wrong unit"),
    (0.9, "r.started - r.submitted"),
])
def test_median_queue_wait_wrong_answers(capsys, answer, hint):
    from helpers.core.trace import TaskRecord
    records = fake_records() + [TaskRecord(9, "p", 0.0, 5.0, 5.1)]
    assert checks.median_queue_wait(answer, records) is False
    assert hint in shown(capsys)


def test_median_queue_wait_mean_gets_a_hint(capsys):
    from helpers.core.trace import TaskRecord
    records = [TaskRecord(i, "p", 0.0, s, s + 0.001) for i, s in enumerate([0.0, 0.01, 1.0])]
    assert checks.median_queue_wait((0.0 + 0.01 + 1.0) / 3, records) is False
    assert "mean" in shown(capsys)


def test_task_timeout_solution_passes(capsys):
    namespace = run_solution("05_task_timeout.py", {})
    assert checks.task_timeout_choice(namespace["answer_timeout"]) is True
    assert checks.task_timeout_choice(0.95) is True  # the latest it accepts


@pytest.mark.parametrize(("answer", "hint"), [
    (0.1, "healthy 0.2 s task could be killed"),
    (5, "more than the 1 s allowed"),
    (1, "can take it past the 1 s allowed"),
    (0.99, "0.95 s at most"),
    (-1, "positive"),
])
def test_task_timeout_wrong_answers(capsys, answer, hint):
    assert checks.task_timeout_choice(answer) is False
    assert hint in shown(capsys)


REPLACE_SKELETON = """
from concurrent.futures.process import BrokenProcessPool

from helpers.pool.build_a_pool.step4_crashes import CrashSafePool


class AnswerPool(CrashSafePool):
    def _replace(self, dead, futures):
        dead["process"].join()
        ...  # 1. fail the task the dead worker held: futures[dead["task"]]
        ...  # 2. put a new worker (self._start()) in the dead one's place in self._workers
        self.replaced += 1
"""

APPENDS_INSTEAD = """
from concurrent.futures.process import BrokenProcessPool

from helpers.pool.build_a_pool.step4_crashes import CrashSafePool


class AnswerPool(CrashSafePool):
    def _replace(self, dead, futures):
        dead["process"].join()
        futures[dead["task"]].set_exception(BrokenProcessPool("died"))
        self._workers.append(self._start())  # the dead one stays in the list
        self.replaced += 1
"""


def test_replaces_dead_worker_solution_passes(capsys):
    namespace = run_solution("05_replaces_dead_worker.py", {})
    assert checks.replaces_dead_worker(namespace["AnswerPool"]) is True
    assert "the other three still returned" in shown(capsys)


@pytest.mark.parametrize(("code", "hint"), [
    (REPLACE_SKELETON, "never got a result or an error"),
    (APPENDS_INSTEAD, "still in `self._workers`"),
])
def test_replaces_dead_worker_wrong_answers(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.replaces_dead_worker(namespace["AnswerPool"]) is False
    assert hint in shown(capsys)


def test_replaces_dead_worker_refuses_what_is_not_a_pool(capsys):
    from helpers.pool.build_a_pool.step4_crashes import CrashSafePool

    assert checks.replaces_dead_worker(int) is False
    assert "class AnswerPool(CrashSafePool)" in shown(capsys)
    assert checks.replaces_dead_worker(type("AnswerPool", (CrashSafePool,), {})) is False
    assert "write your own" in shown(capsys)


TIME_JOB_SKELETON = """
import time
from concurrent.futures import ProcessPoolExecutor

from helpers.core import workloads


def answer_time_job(workers, units, tasks):
    with ProcessPoolExecutor(max_workers=workers) as pool:
        ...  # start the workers first (not timed), then time the job until every result is back
"""

NO_WAIT = TIME_JOB_SKELETON.replace(
    "        ...  # start", "        start = time.perf_counter()\n"
    "        futures = [pool.submit(workloads.python_loop, units) for _ in range(tasks)]\n"
    "        return time.perf_counter() - start  # start")


def test_times_the_job_solution_passes(capsys):
    namespace = run_solution("00_times_the_job.py", {})
    assert checks.times_the_job(namespace["answer_time_job"]) is True
    assert "Your loop timed" in shown(capsys)


@pytest.mark.parametrize(("code", "hint"), [
    (TIME_JOB_SKELETON, "returned None"),
    (NO_WAIT, "stopped the clock before the results were back"),
])
def test_times_the_job_wrong_answers(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.times_the_job(namespace["answer_time_job"]) is False
    assert hint in shown(capsys)


# --- notebook 01 ---

def fake_runs(gil_enabled=True):
    from helpers.experiments.eventloop import STRATEGIES, LoopRun
    return [LoopRun(name, 2, 0.3, 0.2, 0.8, gil_enabled=gil_enabled, usable_cpus=2)
            for name in STRATEGIES]


def test_responsive_and_parallel_solution_passes(capsys):
    namespace = run_solution("01_responsive_and_parallel.py", {})
    assert checks.responsive_and_parallel(namespace["answer_strategy"], fake_runs()) is True
    assert checks.responsive_and_parallel("ProcessPoolExecutor", fake_runs()) is True


@pytest.mark.parametrize(("answer", "hint"), [
    ("to_thread", "GIL"), ("chunks", "one thread"), ("inline", "stops the loop"), (3, "string"),
])
def test_responsive_and_parallel_wrong_answers(capsys, answer, hint):
    assert checks.responsive_and_parallel(answer, fake_runs()) is False
    assert hint in shown(capsys)


def test_responsive_and_parallel_accepts_to_thread_when_the_run_had_the_gil_off(capsys):
    """On a free-threaded kernel with the GIL off, threads run pure Python in parallel."""
    assert checks.responsive_and_parallel("to_thread", fake_runs(gil_enabled=False)) is True
    assert "GIL off" in shown(capsys)
    assert checks.responsive_and_parallel("WorkerPool", fake_runs(gil_enabled=False)) is True
    assert checks.responsive_and_parallel("chunks", fake_runs(gil_enabled=False)) is False


OFFLOAD_SKELETON = """
import asyncio

from helpers.core import workloads


async def answer_offload(pool, units):
    loop = asyncio.get_running_loop()
    return ...  # run workloads.python_loop(units) in `pool`, without blocking the loop
"""

BLOCKING_OFFLOAD = """
from helpers.core import workloads


async def answer_offload(pool, units):
    return workloads.python_loop(units)  # runs on the loop's own thread
"""

NOT_AWAITED_OFFLOAD = """
import asyncio

from helpers.core import workloads


async def answer_offload(pool, units):
    return pool.submit(workloads.python_loop, units).result()  # waits, blocking the loop
"""


def test_offloads_cpu_work_solution_passes(capsys):
    namespace = run_solution("01_offloads_cpu_work.py", {})
    assert checks.offloads_cpu_work(namespace["answer_offload"]) is True
    assert "ran in the pool's worker" in shown(capsys)


@pytest.mark.parametrize(("code", "hint"), [
    (OFFLOAD_SKELETON, "not the task's result"),
    (BLOCKING_OFFLOAD, "the pool ran nothing"),
    (NOT_AWAITED_OFFLOAD, "something still blocked it"),
])
def test_offloads_cpu_work_wrong_answers(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.offloads_cpu_work(namespace["answer_offload"]) is False
    assert hint in shown(capsys)


def test_offloads_cpu_work_refuses_a_plain_function_and_survives_an_error(capsys):
    assert checks.offloads_cpu_work(lambda pool, units: 1) is False
    assert "coroutine function" in shown(capsys)

    async def broken(pool, units):
        raise KeyError("oops")

    assert checks.offloads_cpu_work(broken) is False
    assert "raised KeyError" in shown(capsys)


# --- notebook 02 ---

def test_releases_gil_solution_passes(capsys):
    namespace = run_solution("02_releases_gil.py", {})
    assert checks.releases_gil(namespace["answer_gil"]) is True


@pytest.mark.parametrize(("answer", "hint"), [
    ({"python", "sha256", "zlib", "pillow", "numpy"}, "never lets go of the GIL"),
    ({"sha256"}, "missing"),
    ({"fortran"}, "not CPU workloads"),
    ("sha256", "set of workload names"),
])
def test_releases_gil_wrong_answers(capsys, answer, hint):
    assert checks.releases_gil(answer) is False
    assert hint in shown(capsys)


RACY_SKELETON = """
import time


def answer_add_safely(counter, lock, increments):
    for _ in range(increments):
        # Put these three lines under the lock, so no other thread gets between them:
        current = counter.value
        time.sleep(0)
        counter.value = current + 1
"""

NO_SLEEP = """
def answer_add_safely(counter, lock, increments):
    for _ in range(increments):
        counter.value += 1
"""

LOCK_TAKEN_TWICE = """
import time


def answer_add_safely(counter, lock, increments):
    lock.acquire()
    with lock:
        time.sleep(0)
"""


def learner_function(code, name="answer_add_safely"):
    """Define the learner's code as a notebook cell would (so inspect can read it)."""
    import linecache

    filename = f"<learner {abs(hash(code))}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace: dict = {}
    exec(compile(code, filename, "exec"), namespace)
    return namespace[name]


def test_race_fixed_solution_passes(capsys):
    namespace = run_solution("02_race_fixed.py", {})
    assert checks.race_fixed(namespace["answer_add_safely"]) is True
    assert "All 1200 increments arrived" in shown(capsys)


@pytest.mark.parametrize(("code", "hint"), [
    (RACY_SKELETON, "were lost"),
    (NO_SLEEP, "Keep `time.sleep(0)`"),
])
def test_race_fixed_wrong_answers(capsys, code, hint):
    assert checks.race_fixed(learner_function(code)) is False
    assert hint in shown(capsys)


@pytest.mark.slow
def test_race_fixed_survives_a_lock_taken_twice(capsys):
    """A deadlocked learner thread cannot be stopped: the check gives up after 10 s."""
    assert checks.race_fixed(learner_function(LOCK_TAKEN_TWICE)) is False
    assert "had not finished after 10 s" in shown(capsys)


# --- notebook 10 ---

def task_size_result(efficiency):
    """A result document whose summary (built with the benchmark's own dataclasses) holds
    only a task-size table. ``efficiency`` maps task ms, spelt as in a JSON file ("0.1"),
    to the efficiency measured there."""
    from helpers.bench.schema import Summary, TaskSizeTable

    table = TaskSizeTable(workers=2, efficiency={
        "ProcessPoolExecutor": {float(ms): value for ms, value in efficiency.items()}})
    return {"summary": Summary(task_size=table).to_json()}


def test_break_even_solution_passes_and_wrong_sizes_get_hints(capsys):
    result = task_size_result({"0.1": 0.44, "1": 0.81, "10": 0.97})
    namespace = run_solution("10_break_even.py", {"result": result})
    assert namespace["answer"] == 1.0
    assert checks.break_even_task_ms(namespace["answer"], result) is True
    assert checks.break_even_task_ms(..., result) is False
    assert checks.break_even_task_ms(0.1, result) is False
    assert "only 44%" in shown(capsys)
    assert checks.break_even_task_ms(10, result) is False
    assert "a shorter size does too" in shown(capsys)
    assert checks.break_even_task_ms(3, result) is False
    assert "Pick one of the measured sizes" in shown(capsys)
    assert checks.break_even_task_ms("1 ms", result) is False
    assert "should be a number" in shown(capsys)


def test_break_even_when_no_size_reaches_80_percent(capsys):
    result = task_size_result({"0.1": 0.2, "1": 0.5, "10": 0.7})
    namespace = run_solution("10_break_even.py", {"result": result})
    assert namespace["answer"] is None
    assert checks.break_even_task_ms(None, result) is True
    assert checks.break_even_task_ms(10, result) is False
    assert "the answer is `None`" in shown(capsys)
    assert checks.break_even_task_ms(None, task_size_result({"1": 0.9})) is False


def test_top_cause_solution_passes_and_wrong_causes_get_hints(capsys):
    from helpers.view import compare

    colleague = compare.colleague_result()
    namespace = run_solution("10_top_cause.py", {})
    assert checks.top_cause(namespace["answer"], colleague) is True
    assert checks.top_cause(..., colleague) is False
    assert checks.top_cause("small-tasks", colleague) is False
    assert "a real finding here, but not the biggest" in shown(capsys)
    assert checks.top_cause("gil-threads", colleague) is False
    assert "Nothing in the colleague's numbers shows 'gil-threads'" in shown(capsys)
    assert checks.top_cause(3, colleague) is False
    assert "one-cpu" in shown(capsys)


SIDE_BY_SIDE_SKELETON = """
import statistics
import time


def answer_side_by_side(configurations, repeats):
    names = list(configurations)
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        ...  # this round: every name once, starting at names[repeat % len(names)]; time each call
    return {name: (statistics.median(times), min(times), max(times))
            for name, times in seconds.items()}
"""

ONE_AFTER_ANOTHER = SIDE_BY_SIDE_SKELETON.replace(
    "    for repeat in range(repeats):\n        ...",
    "    for name in names:\n        for repeat in range(repeats):\n"
    "            start = time.perf_counter()\n            configurations[name]()\n"
    "            seconds[name].append(time.perf_counter() - start)\n        ...")
SAME_ORDER = SIDE_BY_SIDE_SKELETON.replace(
    "        ...", "        for name in names:\n            start = time.perf_counter()\n"
    "            configurations[name]()\n"
    "            seconds[name].append(time.perf_counter() - start)\n        ...")
NAMES_MIXED_UP = (
    SIDE_BY_SIDE_SKELETON.replace("return {name:", "results = {name:").replace(
        "for name, times in seconds.items()}",
        "for name, times in seconds.items()}\n"
        "    results['long'], results['none'] = results['none'], results['long']\n"
        "    return results")
    .replace("        ...", "        first = repeat % len(names)\n"
             "        for name in names[first:] + names[:first]:\n"
             "            start = time.perf_counter()\n            configurations[name]()\n"
             "            seconds[name].append(time.perf_counter() - start)"))
CLOCK_ONCE_PER_ROUND = SIDE_BY_SIDE_SKELETON.replace(
    "        ...", "        first = repeat % len(names)\n        start = time.perf_counter()\n"
    "        for name in names[first:] + names[:first]:\n            configurations[name]()\n"
    "            seconds[name].append(time.perf_counter() - start)")
IN_MILLISECONDS = SIDE_BY_SIDE_SKELETON.replace(
    "        ...", "        first = repeat % len(names)\n"
    "        for name in names[first:] + names[:first]:\n"
    "            start = time.perf_counter()\n            configurations[name]()\n"
    "            seconds[name].append(1000 * (time.perf_counter() - start))")
NEVER_RETURNS = """
def answer_side_by_side(configurations, repeats):
    while True:
        for name in configurations:
            configurations[name]()
"""


def test_side_by_side_solution_passes(capsys):
    namespace = run_solution("10_side_by_side.py", {})
    assert checks.side_by_side(namespace["answer_side_by_side"]) is True
    assert "rotated rounds" in shown(capsys)
    assert checks.side_by_side(...) is False


@pytest.mark.parametrize(("code", "hint"), [
    (SIDE_BY_SIDE_SKELETON, "never called a configuration"),
    (ONE_AFTER_ANOTHER, "one configuration after another"),
    (SAME_ORDER, "Every round started with 'none'"),
    (NAMES_MIXED_UP, "under the right name"),
    (CLOCK_ONCE_PER_ROUND, "not once per round"),
    (IN_MILLISECONDS, "are the times in seconds"),
])
def test_side_by_side_wrong_loops_get_hints(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.side_by_side(namespace["answer_side_by_side"]) is False
    assert hint in shown(capsys)


def test_side_by_side_stops_a_loop_that_never_returns(capsys):
    namespace: dict = {}
    exec(compile(NEVER_RETURNS, "learner", "exec"), namespace)
    assert checks.side_by_side(namespace["answer_side_by_side"], time_limit=0.5) is False
    assert "had not returned after 0.5 s" in shown(capsys)
    for thread in [t for t in threading.enumerate() if t.name == "exercise-10.3"]:
        thread.join(5)  # the loop's next call raises, so its thread ends
        assert not thread.is_alive()


# --- notebook 06 ---

def test_prefork_workers_solution_passes_and_wrong_counts_get_hints(capsys, monkeypatch):
    monkeypatch.setattr(machine, "usable_cpus", lambda: 4)
    monkeypatch.setattr(checks.os, "cpu_count", lambda: 16)
    namespace = run_solution("06_prefork_workers.py", {})
    assert checks.prefork_workers(namespace["answer_workers"]) is True
    assert checks.prefork_workers(...) is False
    assert checks.prefork_workers(16) is False
    assert "os.cpu_count() says 16" in shown(capsys)
    assert checks.prefork_workers(9) is False
    assert "2 × CPUs + 1" in shown(capsys)
    assert checks.prefork_workers(1) is False
    assert "idle" in shown(capsys)


def test_throughput_ceiling_solution_passes_and_unit_slips_get_hints(capsys):
    card = machine.machine_card()
    namespace = run_solution("06_throughput_ceiling.py", {"card": card})
    assert checks.throughput_ceiling(namespace["answer_ceiling"], card.usable_cpus, 10) is True
    assert checks.throughput_ceiling(..., 2, 10) is False
    assert checks.throughput_ceiling(100, 2, 10) is False
    assert "one CPU's worth" in shown(capsys)
    assert checks.throughput_ceiling(20, 2, 10) is False
    assert "units" in shown(capsys)


@pytest.mark.slow
def test_gunicorn_config_solution_starts_gunicorn(capsys):
    namespace = run_solution("06_gunicorn_config.py", {})
    assert checks.gunicorn_config(namespace["answer_gunicorn"]) is True
    assert "answered all 200 requests" in shown(capsys) or "Not started here" in shown(capsys)


@pytest.mark.parametrize(("change", "hint"), [
    ({"workers": ...}, "Fill in every"),
    ({"timeout": 1}, "slowest healthy request"),
    ({"max_requests": 10, "max_requests_jitter": 1}, "below 100"),
    ({"max_requests_jitter": 0}, "spreads the restarts"),
    ({"timeout": "10"}, "whole number"),
])
def test_gunicorn_config_wrong_answers(capsys, change, hint):
    from helpers.core import machine

    answer = {"workers": machine.usable_cpus(), "timeout": 10, "max_requests": 500,
              "max_requests_jitter": 50, **change}
    assert checks.gunicorn_config(answer) is False
    assert hint in shown(capsys)


def test_gunicorn_config_names_the_io_rule(capsys, monkeypatch):
    monkeypatch.setattr(checks.machine, "usable_cpus", lambda: 2)
    answer = {"workers": 5, "timeout": 10, "max_requests": 500, "max_requests_jitter": 50}
    assert checks.gunicorn_config(answer) is False
    assert "2 × cores + 1" in shown(capsys)
    assert checks.gunicorn_config({"workers": 2}) is False
    assert "exactly these keys" in shown(capsys)


# --- notebook 03 ---


def learner_module(tmp_path, body):
    """A module as the learner's ``%%writefile`` cell leaves it (under a fresh name)."""
    path = tmp_path / f"my_tasks_{abs(hash(body))}.py"
    path.write_text(body)
    return str(path)


def test_module_function_under_spawn_solution_passes(capsys, tmp_path):
    body = (SOLUTIONS / "03_module_function_under_spawn.py").read_text().split("\n", 1)[1]
    assert checks.module_function_under_spawn(learner_module(tmp_path, body)) is True
    assert "imported your module by name" in shown(capsys)


@pytest.mark.parametrize(("body", "hint"), [
    ("def square(x):\n    ...  # return x squared\n", "not [0, 1, 4"),
    ("def cube(x):\n    return x ** 3\n", "no function called `square`"),
    ("def square(x):\n    return x *\n", "does not parse"),
    ("def square(x):\n    raise ValueError('no')\n", "raised ValueError"),
])
def test_module_function_under_spawn_wrong_answers(capsys, tmp_path, body, hint):
    assert checks.module_function_under_spawn(learner_module(tmp_path, body)) is False
    assert hint in shown(capsys)


def test_module_function_under_spawn_without_the_file(capsys, tmp_path):
    assert checks.module_function_under_spawn(str(tmp_path / "missing.py")) is False
    assert "run the `%%writefile` cell first" in shown(capsys)


SEEDS_SKELETON = """
import numpy as np

from helpers.tasks import pitfalls


def answer_draws(pool, tasks, seed):
    ...  # one child seed per task from `seed`, then map `pitfalls.seeded_draw` over them
"""

SEEDS_GLOBAL = SEEDS_SKELETON.replace(
    "    ...  # one", "    return list(pool.map(pitfalls.numpy_random_draw, range(tasks)))  #")
SEEDS_SAME = SEEDS_SKELETON.replace(
    "    ...  # one", "    return list(pool.map(pitfalls.seeded_draw, [seed] * tasks))  #")
SEEDS_FRESH = SEEDS_SKELETON.replace(
    "    ...  # one", "    seeds = np.random.SeedSequence().spawn(tasks)\n"
    "    return list(pool.map(pitfalls.seeded_draw, seeds))  #")


def test_seeds_every_task_solution_passes(capsys):
    namespace = run_solution("03_seeds_every_task.py", {})
    assert checks.seeds_every_task(namespace["answer_draws"]) is True
    assert "the same again for the same seed" in shown(capsys)
    assert checks.seeds_every_task(...) is False


@pytest.mark.parametrize(("code", "hint"), [
    (SEEDS_SKELETON, "It returned None"),
    (SEEDS_SAME, "they all got the same seed"),
    (SEEDS_FRESH, "gave other numbers the second time"),
])
def test_seeds_every_task_wrong_answers(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.seeds_every_task(namespace["answer_draws"]) is False
    assert hint in shown(capsys)


def test_seeds_from_the_global_generator_repeat_under_fork(capsys):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork is not available here: the global generator is not copied")
    namespace: dict = {}
    exec(compile(SEEDS_GLOBAL, "learner", "exec"), namespace)
    assert checks.seeds_every_task(namespace["answer_draws"]) is False
    assert "repeat another worker's number" in shown(capsys)


CHUNK_SKELETON = """
import math


def answer_chunksize(task_seconds, tasks, message_seconds, workers):
    ...  # at least: message cost <= 5 % of a chunk's work; at most: 4 chunks per worker
"""


def test_chunksize_rule_solution_passes_and_wrong_rules_get_hints(capsys):
    namespace = run_solution("03b_chunksize_rule.py", {})
    assert checks.chunksize_rule(namespace["answer_chunksize"], 100e-6, 2) is True
    assert "Right for all 7 jobs" in shown(capsys)
    assert checks.chunksize_rule(..., 100e-6, 2) is False
    skeleton: dict = {}
    exec(compile(CHUNK_SKELETON, "learner", "exec"), skeleton)
    assert checks.chunksize_rule(skeleton["answer_chunksize"], 100e-6, 2) is False
    assert "returned None" in shown(capsys)
    assert checks.chunksize_rule(lambda t, n, m, w: 1, 100e-6, 2) is False
    assert "the message costs more than 5 %" in shown(capsys)
    assert checks.chunksize_rule(lambda t, n, m, w: math.ceil(m / (0.05 * t)) * 100,
                                 100e-6, 2) is False
    assert "fewer than 4 each" in shown(capsys)
    assert checks.chunksize_rule(lambda t, n, m, w: max(1, n // (4 * w)), 100e-6, 2) is False
    assert "8 workers it gave 3" in shown(capsys)  # the rules conflict: overhead wins
    assert checks.chunksize_rule(lambda t, n, m, w: m / (0.05 * t), 100e-6, 2) is False
    assert "whole number" in shown(capsys)


def test_chunk_bounds():
    assert checks.chunk_bounds(0.0002, 2000, 100e-6, 2) == (10, 250)
    assert checks.chunk_bounds(0.0001, 100, 100e-6, 8) == (20, 20)  # the rules conflict
    assert checks.chunk_bounds(1.0, 3, 50e-6, 4) == (1, 1)


def test_serial_fraction(capsys):
    sweep = fake_result(speedup_at_2=1.8)
    namespace = run_solution("03b_serial_fraction.py", {"sweep": sweep})
    speedup = sweep.speedups()[2].median
    assert checks.serial_fraction(namespace["answer_fraction"], speedup, 2) is True
    assert checks.serial_fraction(..., speedup, 2) is False
    assert checks.serial_fraction(1 - speedup / 2, speedup, 2) is False
    assert "1 − efficiency" in shown(capsys)
    assert checks.serial_fraction(0.5, speedup, 2) is False
    assert checks.serial_fraction(None, 1.0, 1) is True
    assert "Skipped" in shown(capsys)


# --- notebook 04 ---

def test_n_jobs_minus_one(capsys, monkeypatch):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 4)
    monkeypatch.setattr(checks.os, "cpu_count", lambda: 16)
    namespace = run_solution("04_n_jobs.py", {})
    assert checks.n_jobs_minus_one(namespace["answer_n_jobs"]) is True
    assert checks.n_jobs_minus_one(...) is False
    assert checks.n_jobs_minus_one(-1) is False
    assert "what you pass" in shown(capsys)
    assert checks.n_jobs_minus_one(16) is False
    assert "os.cpu_count()" in shown(capsys)


STREAM_SKELETON = """
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from helpers.core import workloads


def answer_stream(items, n_jobs):
    parallel = Parallel(n_jobs=n_jobs, return_as=...)  # results as they finish, any order
    results = parallel(delayed(workloads.sleep_io)(ms) for ms in items)
    yield from tqdm(results, total=len(items))
"""


def test_streams_results_solution_passes(capsys):
    namespace = run_solution("04_streams_results.py", {})
    assert checks.streams_results(namespace["answer_stream"]) is True
    assert "before the slow one" in shown(capsys)


@pytest.mark.parametrize(("return_as", "hint"), [
    ("...", "raised"),
    ('"list"', "nothing was streamed"),
    ('"generator"', "nothing was streamed"),
])
def test_streams_results_wrong_answers(capsys, return_as, hint):
    namespace: dict = {}
    exec(compile(STREAM_SKELETON.replace("return_as=...", f"return_as={return_as}"),
                 "learner", "exec"), namespace)
    assert checks.streams_results(namespace["answer_stream"]) is False
    assert hint in shown(capsys)


BLAS_SKELETON = """
from helpers.core import workloads
from helpers.pool import WorkerPool


def answer_pool(workers):
    return WorkerPool(workers, initializer=..., initargs=...)  # one BLAS thread per worker
"""


def test_one_blas_thread_per_worker(capsys):
    from helpers.core import machine

    namespace = run_solution("04_one_blas_thread_per_worker.py", {})
    assert checks.one_blas_thread_per_worker(namespace["answer_pool"]) is True
    assert "one BLAS thread" in shown(capsys)
    namespace = {}
    exec(compile(BLAS_SKELETON, "learner", "exec"), namespace)
    assert checks.one_blas_thread_per_worker(namespace["answer_pool"]) is False
    assert "raised" in shown(capsys)  # `...` is not a callable initializer
    assert checks.one_blas_thread_per_worker(lambda workers: None) is False
    assert "return the `WorkerPool`" in shown(capsys)
    if max((p["threads"] or 1) for p in machine.blas_threadpools()) > 1:
        from helpers.pool import WorkerPool

        assert checks.one_blas_thread_per_worker(lambda workers: WorkerPool(workers)) is False
        assert "still run" in shown(capsys)


# --- notebook 07 ---

SHARE_SKELETON = """
from multiprocessing import shared_memory

from helpers.tasks import transfer


def answer_share(data, pool):
    segment = shared_memory.SharedMemory(create=True, size=len(data))
    try:
        segment.buf[:len(data)] = data
        return ...  # have a worker run transfer.checksum_segment(<its name>, len(data))
    finally:
        ...  # this process created the segment: close it, then unlink it
"""

SHARE_NO_UNLINK = SHARE_SKELETON.replace(
    "return ...  # have", "return pool.submit(transfer.checksum_segment, segment.name, "
    "len(data)).result()  # have").replace("...  # this process", "segment.close()  #")

SHARE_NO_WORKER = SHARE_SKELETON.replace("return ...  # have", "return 0  # have")


def test_shares_through_memory_solution_passes(capsys):
    namespace = run_solution("07_shares_through_memory.py", {})
    assert checks.shares_through_memory(namespace["answer_share"]) is True
    assert "only a name" in shown(capsys)


@pytest.mark.parametrize(("code", "hint"), [
    (SHARE_SKELETON, "The pool ran nothing"),
    (SHARE_NO_WORKER, "The pool ran nothing"),
    (SHARE_NO_UNLINK, "never unlinked"),
])
def test_shares_through_memory_wrong_answers(capsys, code, hint):
    """Every segment the learner's code leaves behind is removed by the check itself."""
    from helpers.experiments import shm_ownership

    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    before = shm_ownership.shm_entries()
    assert checks.shares_through_memory(namespace["answer_share"]) is False
    assert hint in shown(capsys)
    if before is not None:
        assert not {e for e in shm_ownership.shm_entries() - before if e.startswith("psm_")}


def test_who_unlinks(capsys):
    namespace = run_solution("07_who_unlinks.py", {})
    assert checks.who_unlinks(namespace["answer_unlink"]) is True
    assert checks.who_unlinks(...) is False
    assert checks.who_unlinks("every process that attached to it") is False
    assert "removes the *name*" in shown(capsys)
    assert checks.who_unlinks("nobody: the OS frees it") is False
    assert checks.who_unlinks("the parent") is False
    assert "one of these strings" in shown(capsys)


# --- notebook 08 ---

def job_script(tmp_path, handler):
    """Exercise 08.1's script as a learner's ``%%writefile`` would leave it, with
    ``handler`` as the body of ``on_sigterm`` (the solution's body when None)."""
    text = (SOLUTIONS / "08_drains_on_sigterm.py").read_text().split("\n", 1)[1]
    if handler is not None:
        body = ("        pool.shutdown(wait=True, cancel_futures=True)  # running tasks finish, "
                "queued ones go\n        sys.exit(0)")
        assert body in text
        text = text.replace(body, handler)
    path = tmp_path / "my_job.py"
    path.write_text(text)
    return str(path)


def test_drains_on_sigterm_solution_passes(capsys, tmp_path):
    assert checks.drains_on_sigterm(job_script(tmp_path, None)) is True
    assert "exited 0 and left no worker behind" in shown(capsys)


@pytest.mark.parametrize(("handler", "hint"), [
    ("        ...", "SIGTERM did not stop the job"),
    ("        pool.shutdown(wait=True, cancel_futures=True)\n        sys.exit(3)", "status 3"),
    ("        pool.shutdown(wait=True)\n        sys.exit(0)", "SIGTERM did not stop the job"),
    ("        os._exit(0)", "were running finished"),
])
def test_drains_on_sigterm_wrong_answers(capsys, tmp_path, handler, hint):
    path = job_script(tmp_path, handler)
    if "os._exit" in handler:
        text = open(path).read().replace("import signal\n", "import os\nimport signal\n", 1)
        open(path, "w").write(text)
    assert checks.drains_on_sigterm(path) is False
    assert hint in shown(capsys)


def test_drains_on_sigterm_without_the_file(capsys, tmp_path):
    assert checks.drains_on_sigterm(str(tmp_path / "missing.py")) is False
    assert "run the `%%writefile` cell first" in shown(capsys)
    assert checks.drains_on_sigterm(3) is False


def test_recycle_every(capsys):
    namespace = run_solution("08_recycle_every.py", {"leak_per_task": 4.0})
    assert namespace["answer_recycle"] == 12
    assert checks.recycle_every(namespace["answer_recycle"], 4.0, budget_mib=50) is True
    assert checks.recycle_every(..., 4.0, budget_mib=50) is False
    assert checks.recycle_every(13, 4.0, budget_mib=50) is False
    assert "over the 50 MiB allowed" in shown(capsys)
    assert checks.recycle_every(2, 4.0, budget_mib=50) is False
    assert "more often than needed" in shown(capsys)
    assert checks.recycle_every(0, 4.0, budget_mib=50) is False


def test_advised_choice(capsys):
    import helpers
    from helpers.experiments import advisor

    model = advisor.CostModel(60e-6, 2e-9, 0.01, 5e-6, "fork", "test")
    namespace = run_solution("08b_advised_choice.py", {"helpers": helpers, "model": model})
    advice = helpers.advise(task_seconds=0.0002, payload_bytes=2 * 2**20, tasks=5000,
                            model=model)
    assert namespace["answer_choice"] == advice.choice == "serial"
    assert checks.advised_choice(namespace["answer_choice"], advice) is True
    assert "Send names, not bytes" in shown(capsys)
    assert checks.advised_choice(..., advice) is False
    assert checks.advised_choice("processes", advice) is False
    assert "sending it cost" in shown(capsys)
    assert checks.advised_choice("gpu", advice) is False
    assert "one of" in shown(capsys)


# --- notebook 09 ---

DASK_SKELETON = """
from joblib import Parallel, delayed, parallel_config


def answer_on_dask(fn, items):
    with parallel_config(backend=...):  # the same joblib line; only the backend changes
        return Parallel()(delayed(fn)(x) for x in items)
"""


@pytest.mark.slow
def test_runs_on_dask_solution_and_wrong_answers(capsys):
    """One test: each run starts (and closes) a LocalCluster of its own."""
    namespace = run_solution("09_runs_on_dask.py", {})
    assert checks.runs_on_dask(namespace["answer_on_dask"]) is True
    assert "ran on the cluster's" in shown(capsys)
    for backend, jobs, hint in (("...", "", "raised"),
                                ('"loky"', "n_jobs=2", "not on the Dask workers"),
                                ('"loky"', "", "ran in this kernel")):
        code = DASK_SKELETON.replace("backend=...", f"backend={backend}").replace(
            "Parallel()", f"Parallel({jobs})")
        namespace = {}
        exec(compile(code, "learner", "exec"), namespace)
        assert checks.runs_on_dask(namespace["answer_on_dask"]) is False
        assert hint in shown(capsys)


SCATTER_SKELETON = """
import zlib


def answer_scatter(client, payload, tasks):
    remote = ...  # put the payload on the cluster once (client.scatter), keep the future
    futures = [client.submit(zlib.crc32, remote, pure=False) for _ in range(tasks)]
    return client.gather(futures)
"""


@pytest.mark.slow
def test_scatters_once_solution_and_wrong_answers(capsys):
    """One test: each check starts (and closes) a LocalCluster of its own."""
    namespace = run_solution("09_scatters_once.py", {})
    assert checks.scatters_once(namespace["answer_scatter"]) is True
    assert "went to the cluster once" in shown(capsys)
    for replacement, hint in (("remote = ...", "raised"),
                              ("remote = payload", "carried the payload itself")):
        namespace = {}
        code = SCATTER_SKELETON.replace("remote = ...", replacement)
        exec(compile(code, "learner", "exec"), namespace)
        assert checks.scatters_once(namespace["answer_scatter"]) is False
        assert hint in shown(capsys)


# --- notebook 08b ---

ASSIGN_SKELETON = """
import numpy as np


def answer_nearest(points, centres):
    ...  # an (n, k) table of squared distances by broadcasting, then the nearest per row
"""

ASSIGN_IN_PYTHON = """
import numpy as np


def answer_nearest(points, centres):
    labels = np.zeros(len(points), dtype=int)
    for i, point in enumerate(points):
        labels[i] = ((centres - point) ** 2).sum(axis=1).argmin()
    return labels
"""

ASSIGN_WRONG_AXIS = """
import numpy as np


def answer_nearest(points, centres):
    dx = points[:, 0:1] - centres[:, 0]
    dy = points[:, 1:2] - centres[:, 1]
    table = dx * dx + dy * dy
    return np.resize(table.argmin(axis=0), len(points))
"""


def test_vectorised_assignment_solution_passes(capsys):
    namespace = run_solution("08b_vectorised_assignment.py", {})
    assert checks.vectorised_assignment(namespace["answer_nearest"]) is True
    assert "with no worker process" in shown(capsys)
    assert checks.vectorised_assignment(...) is False


@pytest.mark.parametrize(("code", "hint"), [
    (ASSIGN_SKELETON, "It returned 'None'"),
    (ASSIGN_IN_PYTHON, "it still visits the points one at a time"),
    (ASSIGN_WRONG_AXIS, "labels differ"),
])
def test_vectorised_assignment_wrong_answers(capsys, code, hint):
    namespace: dict = {}
    exec(compile(code, "learner", "exec"), namespace)
    assert checks.vectorised_assignment(namespace["answer_nearest"]) is False
    assert hint in shown(capsys)
