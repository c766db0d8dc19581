"""Notebook 01's experiments: what CPU-bound work does to an asyncio event loop.

One experiment, five ways to run the same CPU work next to an I/O-bound server::

    loopback server (asyncio) ◄── clients: requests that each wait 5 ms (I/O-bound)
    heartbeat coroutine: wakes every 5 ms and records how *late* it woke (the loop lag)
    after a quiet start: N CPU tasks, run by one of
        "inline"               called directly in a coroutine: the loop stops
        "to_thread"            asyncio.to_thread: the loop runs, but shares the GIL (when on)
        "WorkerPool"           loop.run_in_executor(WorkerPool): other processes
        "ProcessPoolExecutor"  loop.run_in_executor(ProcessPoolExecutor)
        "chunks"               the work cut in slices, await asyncio.sleep(0) between them
    ──> LoopRun: lag samples over time, requests served, CPU phase start and end

Every coroutine here runs in Jupyter's own loop (``await lag_experiment(...)`` in a
cell) and in a script (``run_lag_experiment(...)``, which calls ``asyncio.run``). The
server listens on 127.0.0.1 only and uses a bounded number of sockets.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from helpers.core import config, machine, workloads
from helpers.experiments import executors

STRATEGIES = ("inline", "to_thread", "WorkerPool", "ProcessPoolExecutor", "chunks")
HEARTBEAT_SECONDS = 0.005
REQUEST_WAIT_SECONDS = 0.005  # what the server "waits on" per request (a database, say)
CLIENTS = 20  # concurrent client connections during the lag experiment
CHUNK_SECONDS = 0.005  # the "chunks" strategy yields to the loop this often


# --- the loop's strength: many waits at once ---


async def many_sleeps(count: int = 10_000, seconds: float = 0.1) -> float:
    """Start ``count`` coroutines that each sleep ``seconds``; return the wall time."""
    if not 1 <= count <= 100_000:
        raise ValueError(f"count must be 1 to 100000, got {count!r}")
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.sleep(seconds) for _ in range(count)))
    return time.perf_counter() - start


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One client connection: for each line, wait (I/O-bound), then answer."""
    try:
        while line := await reader.readline():
            await asyncio.sleep(REQUEST_WAIT_SECONDS)
            writer.write(b"ok " + line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class LoopbackServer:
    """An asyncio server on 127.0.0.1 and a free port; ``async with`` starts and stops it."""

    async def __aenter__(self) -> LoopbackServer:
        self.server = await asyncio.start_server(_handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _client(port: int, requests: int | None, stop: asyncio.Event,
                  served: list[float]) -> None:
    """One connection sending requests one after another; records when each answer came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        sent = 0
        while not stop.is_set() and (requests is None or sent < requests):
            writer.write(b"ping\n")
            await writer.drain()
            await reader.readline()
            served.append(time.perf_counter())
            sent += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def serve_requests(requests: int = 300, concurrency: int = 100) -> tuple[float, int]:
    """Send ``requests`` requests over ``concurrency`` connections to a loopback server.

    Returns (wall seconds, requests answered). Connections are bounded by
    ``concurrency`` (at most 200), so this stays within any default file limit.
    """
    if not 1 <= concurrency <= 200:
        raise ValueError(f"concurrency must be 1 to 200, got {concurrency!r}")
    served: list[float] = []
    per_client, extra = divmod(requests, concurrency)
    async with LoopbackServer() as server:
        start = time.perf_counter()
        await asyncio.gather(*(
            _client(server.port, per_client + (1 if i < extra else 0), asyncio.Event(), served)
            for i in range(concurrency)))
        return time.perf_counter() - start, len(served)


# --- the loop's weakness: CPU work ---


@dataclass
class LoopRun:
    """One lag experiment: the loop's lateness over time while CPU work ran."""

    strategy: str
    cpu_tasks: int
    cpu_task_seconds: float
    cpu_start: float  # seconds since the run began
    cpu_end: float
    lag: list[tuple[float, float]] = field(default_factory=list)  # (time, lag), seconds
    answered: list[float] = field(default_factory=list)  # times requests were answered
    gil_enabled: bool = True  # as the run found it (an extension can switch it back on)
    usable_cpus: int = 1
    switch_interval: float = 0.005  # sys.getswitchinterval() during the run, seconds

    @property
    def max_lag(self) -> float:
        return max((lag for _, lag in self.lag), default=0.0)

    def requests_per_second(self, during_cpu: bool = True) -> float:
        """Requests answered per second during the CPU phase (or outside it)."""
        if during_cpu:
            window = [t for t in self.answered if self.cpu_start <= t <= self.cpu_end]
            span = self.cpu_end - self.cpu_start
        else:
            window = [t for t in self.answered if t < self.cpu_start]
            span = self.cpu_start
        return len(window) / span if span > 0 else 0.0

    @property
    def cpu_seconds(self) -> float:
        """Wall time the CPU work took."""
        return self.cpu_end - self.cpu_start


async def _heartbeat(samples: list[tuple[float, float]], origin: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + HEARTBEAT_SECONDS
        await asyncio.sleep(HEARTBEAT_SECONDS)
        now = loop.time()
        samples.append((time.perf_counter() - origin, max(0.0, now - expected)))


def _cpu_runner(strategy: str, executor: Executor | None,
                calibration: workloads.Calibration) -> Callable[[int], Awaitable[Any]]:
    """A coroutine function running one CPU task of ``units`` by ``strategy``."""
    loop = asyncio.get_running_loop()
    step = calibration.units_for(CHUNK_SECONDS)

    async def chunks(units: int) -> None:
        """The same work in slices of about CHUNK_SECONDS, yielding to the loop in between."""
        done = 0
        while done < units:
            workloads.python_loop(min(step, units - done))
            done += step
            await asyncio.sleep(0)

    async def inline(units: int) -> Any:
        return workloads.python_loop(units)

    async def to_thread(units: int) -> Any:
        return await asyncio.to_thread(workloads.python_loop, units)

    async def offload(units: int) -> Any:
        return await loop.run_in_executor(executor, workloads.python_loop, units)

    return {"inline": inline, "to_thread": to_thread, "chunks": chunks,
            "WorkerPool": offload, "ProcessPoolExecutor": offload}[strategy]


async def lag_experiment(strategy: str = "inline", *, cpu_tasks: int = 2,
                         cpu_task_seconds: float = 0.3, workers: int = 2,
                         quiet_seconds: float = 0.2, start_method: str | None = None,
                         calibration: workloads.Calibration | None = None,
                         switch_interval_ms: float | None = None) -> LoopRun:
    """Serve requests, then run ``cpu_tasks`` CPU tasks by ``strategy``; record the loop lag.

    ``switch_interval_ms`` sets ``sys.setswitchinterval`` for the run (and puts it back
    after): how long a thread holding the GIL keeps it when another thread asks for it.
    Await it in a notebook (Jupyter's loop is already running); from a script use
    :func:`run_lag_experiment`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} is not one of: {', '.join(STRATEGIES)}")
    if not 0.001 <= cpu_task_seconds <= 3.0:
        raise ValueError(f"cpu_task_seconds={cpu_task_seconds!r} is out of range: "
                         "use 0.001 to 3 s")
    if not 1 <= cpu_tasks <= 16:
        raise ValueError(f"cpu_tasks must be 1 to 16, got {cpu_tasks!r}")
    if switch_interval_ms is not None and not 0.1 <= switch_interval_ms <= 100:
        raise ValueError(f"switch_interval_ms={switch_interval_ms!r} is out of range: "
                         "use 0.1 to 100 ms (Python's default is 5 ms)")
    if calibration is None or calibration.workload != "python":
        calibration = workloads.calibrate("python", budget_seconds=0.2)
    units = calibration.units_for(cpu_task_seconds)
    kind = {"WorkerPool": "WorkerPool", "ProcessPoolExecutor": "process"}.get(strategy)
    executor = None if kind is None else executors.make_executor(kind, workers, start_method)
    try:
        if executor is not None:  # start and warm the pool before the clock starts
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(executor, workloads.sleep_io, 20)
                                   for _ in range(2 * workers)))
        run_one = _cpu_runner(strategy, executor, calibration)
        previous = sys.getswitchinterval()
        if switch_interval_ms is not None:
            sys.setswitchinterval(switch_interval_ms / 1000)
        try:
            return await _measure(strategy, run_one, units, cpu_tasks, cpu_task_seconds,
                                  quiet_seconds)
        finally:
            sys.setswitchinterval(previous)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


async def _measure(strategy: str, run_one: Callable[[int], Awaitable[Any]], units: int,
                   cpu_tasks: int, cpu_task_seconds: float, quiet_seconds: float) -> LoopRun:
    origin = time.perf_counter()
    samples: list[tuple[float, float]] = []
    answered: list[float] = []
    stop = asyncio.Event()
    async with LoopbackServer() as server:
        beat = asyncio.create_task(_heartbeat(samples, origin))
        clients = [asyncio.create_task(_client(server.port, None, stop, answered))
                   for _ in range(CLIENTS)]
        try:
            await asyncio.sleep(quiet_seconds)
            cpu_start = time.perf_counter() - origin
            await asyncio.gather(*(run_one(units) for _ in range(cpu_tasks)))
            cpu_end = time.perf_counter() - origin
            await asyncio.sleep(quiet_seconds)
        finally:
            stop.set()
            beat.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            await asyncio.gather(beat, return_exceptions=True)
    return LoopRun(strategy, cpu_tasks, cpu_task_seconds, cpu_start, cpu_end, samples,
                   [t - origin for t in answered], gil_enabled=machine.gil_enabled(),
                   usable_cpus=machine.usable_cpus(), switch_interval=sys.getswitchinterval())


def run_lag_experiment(strategy: str = "inline", **options: Any) -> LoopRun:
    """The same as ``await lag_experiment(...)``, for scripts (it calls ``asyncio.run``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(lag_experiment(strategy, **options))
    raise RuntimeError("an event loop is already running here (Jupyter runs one): "
                       "use `await lag_experiment(...)` instead")


async def compare_strategies(strategies: tuple[str, ...] = STRATEGIES,
                             **options: Any) -> list[LoopRun]:
    """Run :func:`lag_experiment` once per strategy, one after the other."""
    calibration = workloads.calibrate("python", budget_seconds=config.budget(0.5, 0.2))
    return [await lag_experiment(s, calibration=calibration, **options) for s in strategies]


# --- what the runs say ---


def explain_strategies(runs: Sequence[LoopRun]) -> str:
    """One bullet per strategy, from these runs' numbers and their recorded GIL state."""
    by_name = {run.strategy: run for run in runs}
    inline = by_name.get("inline")
    bullets = [_explain_one(run, inline) for run in runs]
    return "What your numbers say:\n" + "\n".join(f"- {b}" for b in bullets)


def _measured(run: LoopRun, inline: LoopRun | None) -> str:
    text = f"worst lag {run.max_lag * 1000:.0f} ms, CPU work {run.cpu_seconds:.2f} s"
    if inline is not None and run is not inline and inline.cpu_seconds > 0:
        text += f", {run.cpu_seconds / inline.cpu_seconds:.2f}× inline's time"
    return text


def _sooner(run: LoopRun, inline: LoopRun | None) -> str:
    """Whether running side by side paid off in this run, and why it could not if not."""
    if run.usable_cpus < 2 or run.cpu_tasks < 2:
        return (f"with {run.usable_cpus} usable CPU(s) and {run.cpu_tasks} task(s) there "
                "is nothing to run side by side, so the CPU work cannot finish sooner")
    if inline is None:
        return "compare its CPU time with inline's to see whether it finished sooner"
    if run.cpu_seconds < 0.8 * inline.cpu_seconds:
        return "the tasks ran side by side on different CPUs, so the CPU work finished sooner"
    return ("this time the CPU work did not finish much sooner than inline: something else "
            "was using the other CPUs, or the run was too short for the gain to show "
            "(run the cell again and compare)")


def _explain_one(run: LoopRun, inline: LoopRun | None) -> str:
    numbers = _measured(run, inline)
    if run.strategy == "inline":
        return (f"**inline** ({numbers}): the loop has one thread, and the CPU work holds "
                "it until each task ends, so the heartbeat is late by a whole task and the "
                "server answers (almost) nothing meanwhile. This is Node.js's \"don't block "
                "the event loop\" rule, in Python.")
    if run.strategy == "to_thread":
        if run.gil_enabled:
            return (f"**to_thread** ({numbers}): the loop is not frozen, but it is slowed. "
                    "This kernel ran with the GIL on: pure-Python code in the thread holds "
                    "it, and when the loop asks for it back, the thread lets go only after "
                    f"the switch interval ({run.switch_interval * 1000:g} ms, "
                    "`sys.getswitchinterval()`). Every time the loop wakes, it may wait that "
                    "long: the *convoy effect* of an I/O thread next to a CPU thread. The "
                    "threads also take turns on the one GIL, so the CPU work cannot finish "
                    "sooner than inline. Threads do help when the work *releases* the GIL "
                    "(hashlib, zlib, NumPy, Pillow; notebook 02).")
        return (f"**to_thread** ({numbers}): this kernel runs with the GIL **off** "
                "(a free-threaded build), so the thread runs Python at the same time as the "
                f"loop, and the tasks run in parallel with each other: {_sooner(run, inline)}. "
                "Here a thread is a real fix for CPU work, as long as what the threads share "
                "is protected by locks (notebook 02).")
    if run.strategy in ("WorkerPool", "ProcessPoolExecutor"):
        return (f"**{run.strategy}** ({numbers}): the work runs in other processes, each with "
                "its own interpreter, so the loop keeps its thread to itself and requests "
                f"keep flowing; {_sooner(run, inline)}.")
    if run.strategy == "chunks":
        return (f"**chunks** ({numbers}): the loop gets control back every "
                f"{CHUNK_SECONDS * 1000:.0f} ms, so the lag stays near the slice size and "
                "the server keeps answering, but all the work still runs on the loop's one "
                "thread, one slice at a time, in competition with the requests.")
    return f"**{run.strategy}** ({numbers})."


# --- a learner's offload, checked ---


@dataclass(frozen=True)
class OffloadCheck:
    """What happened when a learner's ``offload(pool, units)`` coroutine ran one CPU task."""

    returned: Any
    expected: int
    worst_lag: float
    cpu_seconds: float
    pool_tasks: int  # tasks the pool ran: 0 means the work ran somewhere else


def check_offload(offload: Callable[[Any, int], Awaitable[Any]], task_seconds: float = 0.3,
                  timeout: float = 30.0) -> OffloadCheck:
    """Run ``await offload(pool, units)`` once beside a heartbeat, in a loop of its own
    (also from a notebook, whose loop is already running), with a one-worker WorkerPool
    that is shut down afterwards whatever the learner's code did."""
    from concurrent.futures import ThreadPoolExecutor

    calibration = workloads.calibrate("python", budget_seconds=0.2)
    units = calibration.units_for(task_seconds)

    async def experiment() -> OffloadCheck:
        pool = executors.make_executor("WorkerPool", 1, None)
        try:
            await asyncio.get_running_loop().run_in_executor(pool, workloads.sleep_io, 20)
            samples: list[tuple[float, float]] = []
            origin = time.perf_counter()
            beat = asyncio.create_task(_heartbeat(samples, origin))
            await asyncio.sleep(0.05)
            start = time.perf_counter()
            try:
                returned = await asyncio.wait_for(offload(pool, units), timeout)
            finally:
                elapsed = time.perf_counter() - start
                await asyncio.sleep(4 * HEARTBEAT_SECONDS)  # a blocked beat wakes, late
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)
            ran = pool.stats().completed - 1  # less the warm-up task
            return OffloadCheck(returned, workloads.python_loop(units),
                                max((lag for _, lag in samples), default=0.0), elapsed, ran)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(experiment())
    with ThreadPoolExecutor(max_workers=1) as thread:  # a fresh loop in another thread
        return thread.submit(lambda: asyncio.run(experiment())).result()
