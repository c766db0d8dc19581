"""Dashboards: change the parameters, press Run, see the plot of *your* run.

A widget only re-runs an experiment and redraws; all the logic lives in
``helpers.experiments`` (strong_scaling, pools, ...) and ``view.plots``. The run happens in a
background thread so the notebook stays responsive::

    Run pressed ──> read and check the parameters ──(bad)──> message in the output
                         │ (good, and no run going)
                         ▼
                 thread: experiment(...) ──> figures ──> PNGs in the output

A second press while a run is going only says so; it does not start a second run.
:class:`ExperimentDashboard` holds that logic; each dashboard adds its controls,
its parameter checks, its experiment and its drawing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
from IPython.display import Image, Markdown

from helpers.core import machine, workloads
from helpers.experiments import strong_scaling
from helpers.view import plots


class ExperimentDashboard:
    """Run button, status line, output area, and the run-in-a-thread logic."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self._run = run
        self.usable = machine.usable_cpus()
        self.button = W.Button(description="Run", button_style="primary", icon="play")
        self.status = W.HTML()
        self.output = W.Output()
        self.result: Any = None
        self.runs_started = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.button.on_click(self._on_click)

    # --- to be provided by each dashboard ---

    def controls(self) -> list[W.Widget]:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """The experiment's arguments, checked; raises ValueError saying what is allowed."""
        raise NotImplementedError

    def draw(self, result: Any) -> list[Any]:
        """Display objects (images, Markdown) for a finished run."""
        raise NotImplementedError

    # --- shared ---

    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([W.VBox(self.controls()), W.VBox([self.button, self.status])]),
                       self.output])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _on_click(self, _button: Any = None) -> None:
        with self._lock:
            if self.running:
                self.status.value = "<b>A run is already going</b>: wait for it to finish."
                return
            try:
                arguments = self.parameters()
            except ValueError as error:
                self._show_message(f"**Not run:** {error}")
                return
            self.runs_started += 1
            self.status.value = "running…"
            self._thread = threading.Thread(target=self._run_and_draw, args=(arguments,),
                                            name=type(self).__name__, daemon=True)
            self._thread.start()

    def _run_and_draw(self, arguments: dict[str, Any]) -> None:
        start = time.perf_counter()
        try:
            result = self._run(**arguments)
            shown = self.draw(result)
        except Exception as error:  # shown to the learner, never a traceback
            self._show_message(f"**The run failed:** {type(error).__name__}: {error}")
            self.status.value = "failed"
            return
        self.result = result
        self.output.outputs = ()
        for item in shown:
            self.output.append_display_data(item)
        self.status.value = f"done in {time.perf_counter() - start:.1f} s"

    def _show_message(self, text: str) -> None:
        self.output.outputs = ()
        self.output.append_display_data(Markdown(text))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run ends (for tests and scripts); True if it ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running


def _png(figure: Any) -> Image:
    return Image(data=plots.to_png(figure), format="png")


def _check_range(label: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:
        raise ValueError(f"{label} {value:g}{unit} is out of range: choose {low:g} to "
                         f"{high:g}{unit}.")


class ScalingDashboard(ExperimentDashboard):
    """Workers, workload, executor and task size → the scaling plot and a timeline."""

    #: Task sizes the dashboard accepts, in milliseconds.
    TASK_MS_RANGE = (1.0, 2000.0)
    SWITCH_MS_RANGE = (0.1, 100.0)

    def __init__(self,
                 run: Callable[..., strong_scaling.ScalingResult] = strong_scaling.run_scaling):
        super().__init__(run)
        available = [name for name, w in workloads.WORKLOADS.items() if w.available()]
        self.workers = W.IntSlider(
            value=self.usable, min=1, max=2 * self.usable, description="max workers",
            tooltip="up to 2× the usable CPUs, to show oversubscription",
        )
        self.workload = W.Dropdown(options=available, value="python", description="workload")
        self.executor = W.ToggleButtons(options=["process", "thread"], value="process",
                                        description="executor")
        self.task_ms = W.FloatText(value=20.0, description="task (ms)")

    def controls(self) -> list[W.Widget]:
        return [self.workers, self.workload, self.task_ms, self.executor]

    def parameters(self) -> dict[str, Any]:
        _check_range("task size", self.task_ms.value, *self.TASK_MS_RANGE, " ms")
        _check_range("max workers", self.workers.value, 1, 2 * self.usable)
        return {
            "workers": strong_scaling.default_worker_counts(self.workers.value),
            "workload": self.workload.value,
            "executor": self.executor.value,
            "task_seconds": self.task_ms.value / 1000,
            "progress": False,
        }

    def draw(self, result: strong_scaling.ScalingResult) -> list[Any]:
        top = max(result.traces)
        return [_png(plots.scaling_plot(result)), Markdown(result.explain()),
                _png(plots.timeline_plot(result.traces[top], f"Timeline with {top} workers"))]


def scaling_dashboard() -> ScalingDashboard:
    """A ready-to-display :class:`ScalingDashboard`."""
    return ScalingDashboard()


class PoolDashboard(ExperimentDashboard):
    """Pool, chunk size, workers and task size → that pool's timeline and wall time."""

    TASK_MS_RANGE = (0.05, 500.0)
    TASKS_RANGE = (1, 5000)

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import pools

        super().__init__(run or pools.timeline)
        self.pool = W.Dropdown(options=list(pools.POOLS), value="WorkerPool",
                               description="pool")
        self.chunksize = W.IntText(value=1, description="chunksize")
        self.workers = W.IntSlider(value=self.usable, min=1, max=2 * self.usable,
                                   description="workers")
        self.task_ms = W.FloatText(value=2.0, description="task (ms)")
        self.tasks = W.IntText(value=200, description="tasks")

    def controls(self) -> list[W.Widget]:
        return [self.pool, self.chunksize, self.workers, self.task_ms, self.tasks]

    def parameters(self) -> dict[str, Any]:
        _check_range("task size", self.task_ms.value, *self.TASK_MS_RANGE, " ms")
        _check_range("number of tasks", self.tasks.value, *self.TASKS_RANGE)
        _check_range("chunksize", self.chunksize.value, 1, max(1, self.tasks.value))
        _check_range("workers", self.workers.value, 1, 2 * self.usable)
        return {"pool": self.pool.value, "chunksize": self.chunksize.value,
                "workers": self.workers.value, "task_seconds": self.task_ms.value / 1000,
                "tasks": self.tasks.value}

    def draw(self, result: Any) -> list[Any]:
        ideal = result.tasks * result.task_seconds / min(result.workers, self.usable)
        summary = (f"**{result.pool}** ran {result.tasks} tasks of "
                   f"{result.task_seconds * 1000:g} ms "
                   f"on {result.workers} workers (chunksize {result.chunksize}) in "
                   f"**{result.seconds * 1000:.0f} ms**; perfect division of the work would take "
                   f"{ideal * 1000:.0f} ms, so **{max(result.seconds - ideal, 0) * 1000:.0f} ms** "
                   "went to overhead and idle workers.")
        return [_png(plots.timelines_plot([result], f"{result.pool}, {result.start_method}")),
                Markdown(summary)]


def pool_dashboard() -> PoolDashboard:
    """A ready-to-display :class:`PoolDashboard`."""
    return PoolDashboard()


class JoblibDashboard(ExperimentDashboard):
    """Backend, n_jobs, batch size and task size → one joblib job against a serial loop."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import joblib_runs

        super().__init__(run or joblib_runs.one_configuration)
        self.workload = W.Dropdown(options=["python", "sha256"], value="python",
                                   description="workload")
        self.backend = W.Dropdown(options=list(joblib_runs.BACKENDS), value="loky",
                                  description="backend")
        self.n_jobs = W.IntSlider(value=self.usable, min=1, max=2 * self.usable,
                                  description="n_jobs")
        self.batch_size = W.Dropdown(options=["auto", "1", "10", "100"], value="auto",
                                     description="batch_size")
        self.task_ms = W.FloatText(value=5.0, description="task (ms)")
        self.tasks = W.IntText(value=200, description="tasks")

    def controls(self) -> list[W.Widget]:
        return [self.workload, self.backend, self.n_jobs, self.batch_size, self.task_ms,
                self.tasks]

    def parameters(self) -> dict[str, Any]:
        _check_range("n_jobs", self.n_jobs.value, 1, 2 * self.usable)
        _check_range("task size", self.task_ms.value, 0.01, 1000.0, " ms")
        _check_range("tasks", self.tasks.value, 1, 100_000)
        if self.tasks.value * self.task_ms.value > 20_000:
            raise ValueError(f"{self.tasks.value} tasks × {self.task_ms.value:g} ms is more than "
                             "20 s of serial work: use fewer or smaller tasks")
        batch = self.batch_size.value
        return {"workload": self.workload.value, "backend": self.backend.value,
                "n_jobs": self.n_jobs.value, "batch_size": batch if batch == "auto" else int(batch),
                "task_ms": self.task_ms.value, "tasks": self.tasks.value}

    def draw(self, result: Any) -> list[Any]:
        from helpers.experiments import joblib_runs

        return [_png(plots.backend_plot([result])),
                Markdown(joblib_runs.explain_backends([result])
                         + f"\n\n{result['tasks']} tasks of {result['task_ms']:g} ms, "
                           f"`batch_size={result['batch_size']!r}`.")]


def joblib_dashboard() -> JoblibDashboard:
    """A ready-to-display :class:`JoblibDashboard`."""
    return JoblibDashboard()


class BenchmarkDashboard(ExperimentDashboard):
    """Benchmark parts to run (quick mode), or a result file to read → the diagnosis and
    the conditions each part ran in (notebook 10)."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.bench import suite

        super().__init__(run or _benchmark_experiment)
        self.parts = W.SelectMultiple(options=list(suite.PARTS), value=["scaling"],
                                      description="parts", rows=len(suite.PARTS))
        self.path = W.Text(value="", description="or a file",
                           placeholder="a colleague's result .json (then nothing runs)")

    def controls(self) -> list[W.Widget]:
        return [self.parts, self.path]

    def parameters(self) -> dict[str, Any]:
        from pathlib import Path

        path = self.path.value.strip()
        if path and not Path(path).expanduser().is_file():
            raise ValueError(f"there is no file {path!r}: give the path of a result .json, "
                             "or leave it empty to run the parts chosen")
        if not path and not self.parts.value:
            raise ValueError("choose at least one part to run, or give a result file")
        return {"parts": tuple(self.parts.value), "path": path}

    def draw(self, result: Any) -> list[Any]:
        from helpers.bench import diagnosis

        findings = diagnosis.why_no_speedup(result)
        where = result.get("machine", {}).get("cpu_model", "unknown CPU")
        return [Markdown(f"**{where}**, {result.get('mode', '?')} mode\n\n"
                         + diagnosis.diagnosis_markdown(findings)),
                Markdown(diagnosis.conditions_markdown(result))]


def _benchmark_experiment(parts: tuple[str, ...], path: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    from helpers.bench import suite

    if path:
        return json.loads(Path(path).expanduser().read_text())
    bench = suite.CourseBenchmark(quick=True, progress=None)
    for part in parts:
        bench.run(part)
    return bench.document()


def benchmark_dashboard() -> BenchmarkDashboard:
    """A ready-to-display :class:`BenchmarkDashboard`."""
    return BenchmarkDashboard()


class LoopDashboard(ExperimentDashboard):
    """CPU task size and offload strategy → the loop-lag timeline and requests served."""

    TASK_MS_RANGE = (1.0, 2000.0)
    SWITCH_MS_RANGE = (0.1, 100.0)

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import eventloop

        super().__init__(run or eventloop.run_lag_experiment)
        self.strategy = W.Dropdown(options=list(eventloop.STRATEGIES), value="inline",
                                   description="strategy")
        self.task_ms = W.FloatText(value=200.0, description="CPU task (ms)")
        self.cpu_tasks = W.IntSlider(value=2, min=1, max=8, description="CPU tasks")
        self.switch_ms = W.FloatText(value=5.0, description="switch (ms)",
                                     tooltip="sys.setswitchinterval for the run: how long a "
                                             "thread keeps the GIL once another asks for it")

    def controls(self) -> list[W.Widget]:
        return [self.strategy, self.task_ms, self.cpu_tasks, self.switch_ms]

    def parameters(self) -> dict[str, Any]:
        _check_range("CPU task size", self.task_ms.value, *self.TASK_MS_RANGE, " ms")
        _check_range("CPU tasks", self.cpu_tasks.value, 1, 8)
        _check_range("switch interval", self.switch_ms.value, *self.SWITCH_MS_RANGE, " ms")
        return {"strategy": self.strategy.value, "cpu_task_seconds": self.task_ms.value / 1000,
                "cpu_tasks": self.cpu_tasks.value, "switch_interval_ms": self.switch_ms.value}

    def draw(self, result: Any) -> list[Any]:
        from helpers.experiments import eventloop

        return [_png(plots.lag_timeline_plot([result], "Event-loop lag")),
                Markdown(eventloop.explain_strategies([result]))]


def loop_dashboard() -> LoopDashboard:
    """A ready-to-display :class:`LoopDashboard`. (It runs in its own thread and loop.)"""
    return LoopDashboard()


class ThreadDashboard(ExperimentDashboard):
    """Workload and thread count → speedup over one thread, and busy CPUs over time."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        super().__init__(run or _thread_experiment)
        available = [name for name, w in workloads.WORKLOADS.items()
                     if w.available() and not w.io_bound]
        self.workload = W.Dropdown(options=available, value="python", description="workload")
        self.threads = W.IntSlider(value=self.usable, min=1, max=2 * self.usable,
                                   description="threads")

    def controls(self) -> list[W.Widget]:
        return [self.workload, self.threads]

    def parameters(self) -> dict[str, Any]:
        _check_range("threads", self.threads.value, 1, 2 * self.usable)
        return {"workload": self.workload.value, "threads": self.threads.value}

    def draw(self, result: Any) -> list[Any]:
        scaling, cpu = result
        return [_png(plots.speedup_by_workload_plot({scaling.workload: scaling})),
                _png(plots.cpu_use_plot(cpu))]


def _thread_experiment(workload: str, threads: int) -> tuple[Any, Any]:
    from helpers.experiments import gil

    scaling = strong_scaling.run_scaling(strong_scaling.default_worker_counts(threads),
                                      workload=workload, executor="thread", repeats=3,
                                      budget_seconds=1.5, progress=False)
    return scaling, gil.cpu_use(workload, threads, executors=("thread",))


def thread_dashboard() -> ThreadDashboard:
    """A ready-to-display :class:`ThreadDashboard`."""
    return ThreadDashboard()


class ClusterDashboard(ExperimentDashboard):
    """Server, workers, route and concurrency → a load run → throughput and latency."""

    SERVERS = ("PreforkServer", "asyncio + WorkerPool", "asyncio, CPU inline")

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        super().__init__(run or _cluster_experiment)
        self.server = W.Dropdown(options=list(self.SERVERS), value="PreforkServer",
                                 description="server")
        self.workers = W.IntSlider(value=self.usable, min=1, max=4 * self.usable,
                                   description="workers",
                                   tooltip="past the usable CPUs, to show oversubscription")
        self.route = W.ToggleButtons(options=["cpu", "io"], value="cpu", description="route")
        self.ms = W.FloatText(value=10.0, description="ms / request")
        self.concurrency = W.IntSlider(value=8, min=1, max=64, description="clients")
        self.seconds = W.FloatText(value=2.0, description="seconds")

    def controls(self) -> list[W.Widget]:
        return [self.server, self.workers, self.route, self.ms, self.concurrency, self.seconds]

    def parameters(self) -> dict[str, Any]:
        _check_range("ms per request", self.ms.value, 0, 2000, " ms")
        _check_range("workers", self.workers.value, 1, 4 * self.usable)
        _check_range("clients", self.concurrency.value, 1, 64)
        _check_range("seconds", self.seconds.value, 0.2, 20, " s")
        return {"server": self.server.value, "workers": self.workers.value,
                "route": self.route.value, "ms": self.ms.value,
                "concurrency": self.concurrency.value, "seconds": self.seconds.value}

    def draw(self, result: Any) -> list[Any]:
        rows, load = result
        title = f"{rows[0]['server']}, /{rows[0]['route']}"
        return [_png(plots.server_comparison_plot(rows, title)), Markdown(load._repr_markdown_())]


def _cluster_experiment(server: str, workers: int, route: str, ms: float, concurrency: int,
                        seconds: float) -> tuple[list[dict[str, Any]], Any]:
    from helpers.experiments import server_load
    from helpers.servers import asyncio_server, prefork

    servers = {"PreforkServer": lambda: prefork.PreforkServer(workers=workers),
               "asyncio + WorkerPool":
                   lambda: asyncio_server.AsyncAppServer("offload", workers=workers),
               "asyncio, CPU inline": lambda: asyncio_server.AsyncAppServer("inline")}
    with servers[server]() as running:
        result = prefork.load(server_load.route_url(running.url, route, ms),
                              requests=100_000, concurrency=concurrency, max_seconds=seconds)
    shown = 1 if server == "asyncio, CPU inline" else workers
    return [server_load.row(server, shown, route, result)], result


def cluster_dashboard() -> ClusterDashboard:
    """The dashboard of notebook 06."""
    return ClusterDashboard()


class ChunkDashboard(ExperimentDashboard):
    """Task duration, chunk size and workers → speedup over serial and the pool's timeline."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import processes

        super().__init__(run or processes.chunk_run)
        self.task_ms = W.FloatLogSlider(value=1.0, base=10, min=-2, max=2, step=0.25,
                                        description="task (ms)")
        self.chunksize = W.IntSlider(value=1, min=1, max=256, description="chunksize")
        self.workers = W.IntSlider(value=self.usable, min=1, max=2 * self.usable,
                                   description="workers")

    def controls(self) -> list[W.Widget]:
        return [self.task_ms, self.chunksize, self.workers]

    def parameters(self) -> dict[str, Any]:
        _check_range("task duration", self.task_ms.value, 0.01, 100, " ms")
        _check_range("chunksize", self.chunksize.value, 1, 10_000)
        _check_range("workers", self.workers.value, 1, 2 * self.usable)
        return {"task_ms": self.task_ms.value, "chunksize": self.chunksize.value,
                "workers": self.workers.value}

    def draw(self, result: Any) -> list[Any]:
        summary = (f"**{result.speedup:.2f}×** over serial: {result.tasks} tasks of "
                   f"{result.task_ms:.3g} ms, chunksize {result.chunksize}, {result.workers} "
                   f"workers ({result.serial_seconds:.2f} s serial, "
                   f"{result.parallel_seconds:.2f} s in the pool).")
        shown: list[Any] = [Markdown(summary)]
        if result.records:
            shown.insert(0, _png(plots.timeline_plot(
                result.records, "The last chunks each worker ran (WorkerPool.trace)")))
        return shown


def chunk_dashboard() -> ChunkDashboard:
    """The chunk-size dashboard of notebook 03b."""
    return ChunkDashboard()


class StartMethodDashboard(ExperimentDashboard):
    """Start methods and a worker count → each one's time to a first result and memory
    per worker, measured side by side (notebook 03)."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        import multiprocessing

        super().__init__(run or _start_method_experiment)
        methods = multiprocessing.get_all_start_methods()
        self.methods = W.SelectMultiple(options=methods, value=tuple(methods),
                                        description="methods", rows=len(methods))
        self.workers = W.IntSlider(value=2, min=1, max=max(8, 2 * self.usable),
                                   description="workers")
        self.repeats = W.IntSlider(value=3, min=1, max=10, description="repeats")

    def controls(self) -> list[W.Widget]:
        return [self.methods, self.workers, self.repeats]

    def parameters(self) -> dict[str, Any]:
        if not self.methods.value:
            raise ValueError("choose at least one start method")
        _check_range("workers", self.workers.value, 1, max(8, 2 * self.usable))
        _check_range("repeats", self.repeats.value, 1, 10)
        return {"methods": list(self.methods.value), "workers": self.workers.value,
                "repeats": self.repeats.value}

    def draw(self, result: Any) -> list[Any]:
        lines = [f"- **{r['method']}**: first result after {r['first_result_ms']:.0f} ms "
                 f"(range {r['low_ms']:.0f}–{r['high_ms']:.0f}), {r['uss_mib']:.1f} MiB of "
                 "its own per worker" for r in result]
        return [_png(plots.start_method_plot(result)), Markdown("\n".join(lines))]


def _start_method_experiment(methods: list[str], workers: int, repeats: int) -> list[dict]:
    from helpers.experiments import processes

    return processes.start_method_costs(methods, workers=workers, repeats=repeats)


def start_method_dashboard() -> StartMethodDashboard:
    """The start-method dashboard of notebook 03."""
    return StartMethodDashboard()


class TransferDashboard(ExperimentDashboard):
    """Payload size and method → time and throughput, next to a thread reading the same."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import data_transfer

        super().__init__(run or _transfer_experiment)
        self.methods = data_transfer.METHODS
        self.megabytes = W.FloatLogSlider(value=16, base=2, min=-10, max=8, step=1,
                                          description="payload MiB")
        self.method = W.Dropdown(options=list(self.methods), value="pickle",
                                 description="method")

    def controls(self) -> list[W.Widget]:
        return [self.megabytes, self.method]

    def parameters(self) -> dict[str, Any]:
        from helpers.experiments import data_transfer

        limit = data_transfer.size_limits()[self.method.value] / 2**20
        _check_range("payload", self.megabytes.value, 1 / 1024, min(256.0, limit), " MiB")
        return {"size": int(self.megabytes.value * 2**20), "method": self.method.value}

    def draw(self, result: Any) -> list[Any]:
        lines = [f"- **{r['method']}**: {r['seconds'] * 1000:.2f} ms "
                 f"({r['low'] * 1000:.2f}–{r['high'] * 1000:.2f}), {r['mib_per_s']:.0f} MiB/s"
                 for r in result if "seconds" in r]
        return [Markdown(f"{result[0]['bytes'] / 2**20:g} MiB:\n" + "\n".join(lines))]


def _transfer_experiment(size: int, method: str) -> list[dict[str, Any]]:
    from helpers.experiments import data_transfer

    methods = tuple(dict.fromkeys((method, "thread (no copy)")))
    return data_transfer.transfer_costs(sizes=[size], methods=methods, repeats=3)


def transfer_dashboard() -> TransferDashboard:
    """The dashboard of notebook 07."""
    return TransferDashboard()


class BackpressureDashboard(ExperimentDashboard):
    """A producer's job (tasks, payload) and a bound → the job unbounded and bounded, side
    by side: unfinished tasks and the parent's memory over time (notebook 08)."""

    #: Most payload, in all, one run may hold in the parent.
    MAX_PAYLOAD_TOTAL_MIB = 512

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        super().__init__(run or _backpressure_experiment)
        self.bound = W.IntSlider(value=2 * min(2, self.usable), min=1, max=32,  # as section 4
                                 description="in flight",
                                 tooltip="the semaphore's size: most tasks unfinished at once")
        self.payload_mib = W.FloatSlider(value=1.0, min=0.25, max=8.0, step=0.25,
                                         description="payload MiB")
        self.tasks = W.IntSlider(value=120, min=10, max=400, step=10, description="tasks")

    def controls(self) -> list[W.Widget]:
        return [self.bound, self.payload_mib, self.tasks]

    def parameters(self) -> dict[str, Any]:
        _check_range("in flight", self.bound.value, 1, 32)
        _check_range("payload", self.payload_mib.value, 0.25, 8.0, " MiB")
        _check_range("tasks", self.tasks.value, 10, 400)
        total = self.payload_mib.value * self.tasks.value
        if total > self.MAX_PAYLOAD_TOTAL_MIB:
            raise ValueError(f"tasks × payload is {total:g} MiB; the unbounded run would hold "
                             f"it all, so a run here allows at most "
                             f"{self.MAX_PAYLOAD_TOTAL_MIB} MiB.")
        return {"bound": self.bound.value, "payload_mib": self.payload_mib.value,
                "tasks": self.tasks.value}

    def draw(self, result: Any) -> list[Any]:
        from helpers.view import explain_production, production_plots

        return [_png(production_plots.backpressure_plot(result)),
                Markdown(explain_production.explain_backpressure(*result))]


def _backpressure_experiment(bound: int, payload_mib: float, tasks: int) -> list[dict[str, Any]]:
    from helpers.experiments import production_patterns

    return [production_patterns.backpressure(bounded, tasks=tasks, payload_mib=payload_mib,
                                             bound=bound) for bounded in (False, True)]


def backpressure_dashboard() -> BackpressureDashboard:
    """The backpressure dashboard of notebook 08."""
    return BackpressureDashboard()


class AdviceDashboard(ExperimentDashboard):
    """A job's shape → ``helpers.advise``'s answer, and (optionally) the same job measured."""

    #: Most seconds of work, and most payload bytes in all, a measured run may take.
    MAX_WORK_SECONDS = 5.0
    MAX_PAYLOAD_TOTAL = 512 * 2**20

    def __init__(self, run: Callable[..., Any] | None = None, model: Any = None) -> None:
        super().__init__(run or _advice_experiment)
        self.model = model
        self.task_ms = W.FloatLogSlider(value=5, base=10, min=-2, max=3, step=0.25,
                                        description="task (ms)")
        self.payload_kib = W.FloatLogSlider(value=1, base=2, min=0, max=16, step=1,
                                            description="payload KiB")
        self.no_payload = W.Checkbox(value=True, description="no payload")
        self.tasks = W.IntText(value=200, description="tasks")
        self.cpus = W.IntSlider(value=self.usable, min=1, max=64, description="CPUs")
        self.releasing = W.Checkbox(value=False, description="releases the GIL")
        self.measure = W.Checkbox(value=True, description="also measure it here")

    def controls(self) -> list[W.Widget]:
        return [self.task_ms, self.payload_kib, self.no_payload, self.tasks, self.cpus,
                self.releasing, self.measure]

    def parameters(self) -> dict[str, Any]:
        _check_range("tasks", self.tasks.value, 1, 100_000)
        _check_range("CPUs", self.cpus.value, 1, 64)
        task_seconds = self.task_ms.value / 1000
        payload = 0 if self.no_payload.value else int(self.payload_kib.value * 1024)
        measure = self.measure.value
        if measure and self.cpus.value != self.usable:
            raise ValueError(f"a run here can only measure this machine's {self.usable} usable "
                             "CPU(s): set CPUs to that, or untick 'also measure it here'.")
        if measure and self.tasks.value * task_seconds > self.MAX_WORK_SECONDS:
            raise ValueError(f"tasks × task size is {self.tasks.value * task_seconds:.1f} s of "
                             f"work; a measured run allows at most {self.MAX_WORK_SECONDS:g} s.")
        if measure and payload * self.tasks.value > self.MAX_PAYLOAD_TOTAL:
            raise ValueError("tasks × payload is over 512 MiB; a measured run allows at most "
                             "that.")
        return {"task_seconds": task_seconds, "payload_bytes": payload,
                "tasks": self.tasks.value, "cpus": self.cpus.value,
                "gil_releasing": self.releasing.value, "measure": measure,
                "model": self.model}

    def draw(self, result: Any) -> list[Any]:
        advice, rows = result
        shown: list[Any] = [Markdown(advice._repr_markdown_())]
        if rows:
            from helpers.view import tables

            shown.append(Markdown("Measured here:\n\n" + tables.markdown_table(rows)))
        return shown


def _advice_experiment(task_seconds: float, payload_bytes: int, tasks: int, cpus: int,
                       gil_releasing: bool, measure: bool, model: Any) -> tuple[Any, list]:
    from helpers.experiments import advisor, production_patterns

    model = model or advisor.default_model()
    advice = advisor.advise(task_seconds, payload_bytes=payload_bytes, cpus=cpus,
                            gil_releasing=gil_releasing, tasks=tasks, model=model)
    rows = []
    if measure:
        case = production_patterns.Case("your job", task_seconds, tasks, payload_bytes,
                                           gil_releasing)
        rows = production_patterns.check_advice([case], model, repeats=2)
        for row in rows:
            for hidden in production_patterns.ADVICE_HIDDEN:
                row.pop(hidden, None)
    return advice, rows


def advice_dashboard(model: Any = None) -> AdviceDashboard:
    """The dashboard of notebook 08b (``model``: the notebook's measured CostModel)."""
    return AdviceDashboard(model=model)


class DaskDashboard(ExperimentDashboard):
    """Workers and task size → the same job on loky and on a fresh LocalCluster of that size."""

    TASK_MS_RANGE = (1.0, 200.0)

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        super().__init__(run or _dask_experiment)
        self.workers = W.IntSlider(value=self.usable, min=1, max=2 * self.usable,
                                   description="workers",
                                   tooltip="up to 2× the usable CPUs, to show oversubscription")
        self.task_ms = W.FloatText(value=20.0, description="task (ms)")

    def controls(self) -> list[W.Widget]:
        return [self.workers, self.task_ms]

    def parameters(self) -> dict[str, Any]:
        _check_range("workers", self.workers.value, 1, 2 * self.usable)
        _check_range("task size", self.task_ms.value, *self.TASK_MS_RANGE, " ms")
        return {"workers": self.workers.value, "task_seconds": self.task_ms.value / 1000}

    def draw(self, result: Any) -> list[Any]:
        from helpers.experiments import dask_runs
        from helpers.view import production_plots

        rows, notes = result
        figure = production_plots.bars_with_spread(
            dask_runs.speedups(rows), "speedup over serial (median, min–max)",
            f"{rows[0]['tasks']} tasks of {rows[0]['task_seconds'] * 1000:g} ms on "
            f"{rows[0]['workers']} workers")
        return [_png(figure), *[Markdown(note) for note in notes]]


def _dask_experiment(workers: int, task_seconds: float) -> tuple[list, list[str]]:
    from helpers.experiments import dask_runs
    from helpers.servers import dask_cluster

    with dask_cluster.start(workers=workers, local=True) as session:
        rows = dask_runs.same_job_every_way(session, task_seconds=task_seconds,
                                                   tasks=8 * workers, repeats=2)
        return rows, list(session.notes)


def dask_dashboard() -> DaskDashboard:
    """The dashboard of notebook 09: each run starts and closes its own LocalCluster."""
    return DaskDashboard()
