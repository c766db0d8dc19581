"""Dashboards: change the parameters, press Run, see the plot of *your* run.

A widget only re-runs an experiment and redraws; all the logic lives in
``experiments`` and ``plots``. The run happens in a background thread so the
notebook stays responsive:

    Run pressed ──> read and check the parameters ──(bad)──> message in the output
                         │ (good, and no run going)
                         ▼
                 thread: run_scaling(...) ──> plot ──> PNG in the output

A second press while a run is going only says so; it does not start a second run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
from IPython.display import Image, Markdown

from . import experiments, machine, plots, workloads


class ScalingDashboard:
    """Workers, workload and task size → the scaling plot and a timeline."""

    #: Task sizes the dashboard accepts, in milliseconds.
    TASK_MS_RANGE = (1.0, 2000.0)

    def __init__(self, run: Callable[..., experiments.ScalingResult] = experiments.run_scaling):
        self._run = run
        self.usable = machine.usable_cpus()
        available = [name for name, w in workloads.WORKLOADS.items() if w.available()]
        self.workers = W.IntSlider(
            value=self.usable, min=1, max=2 * self.usable, description="max workers",
            tooltip="up to 2× the usable CPUs, to show oversubscription",
        )
        self.workload = W.Dropdown(options=available, value="python", description="workload")
        self.executor = W.ToggleButtons(options=["process", "thread"], value="process",
                                        description="executor")
        self.task_ms = W.FloatText(value=20.0, description="task (ms)")
        self.button = W.Button(description="Run", button_style="primary", icon="play")
        self.status = W.HTML()
        self.output = W.Output()
        self.result: experiments.ScalingResult | None = None
        self.runs_started = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.button.on_click(self._on_click)

    # --- what the notebook shows ---

    def widget(self) -> W.Widget:
        controls = W.HBox([W.VBox([self.workers, self.workload, self.task_ms]),
                           W.VBox([self.executor, self.button, self.status])])
        return W.VBox([controls, self.output])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())

    # --- the callback ---

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def parameters(self) -> dict[str, Any]:
        """The run's arguments, checked; raises ValueError saying what is allowed."""
        low, high = self.TASK_MS_RANGE
        task_ms = self.task_ms.value
        if not low <= task_ms <= high:
            raise ValueError(
                f"task size {task_ms:g} ms is out of range: choose {low:g} to {high:g} ms."
            )
        top = self.workers.value
        if not 1 <= top <= 2 * self.usable:
            raise ValueError(f"max workers must be 1 to {2 * self.usable}, got {top}.")
        return {
            "workers": experiments.default_worker_counts(top),
            "workload": self.workload.value,
            "executor": self.executor.value,
            "task_seconds": task_ms / 1000,
            "progress": False,
        }

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
                                            name="scaling-dashboard", daemon=True)
            self._thread.start()

    def _run_and_draw(self, arguments: dict[str, Any]) -> None:
        start = time.perf_counter()
        try:
            result = self._run(**arguments)
            scaling = plots.to_png(plots.scaling_plot(result))
            timeline = plots.to_png(plots.timeline_plot(
                result.traces[max(result.traces)],
                f"Timeline with {max(result.traces)} workers"))
        except Exception as error:  # shown to the learner, never a traceback
            self._show_message(f"**The run failed:** {type(error).__name__}: {error}")
            self.status.value = "failed"
            return
        self.result = result
        self.output.outputs = ()
        self.output.append_display_data(Image(data=scaling, format="png"))
        self.output.append_display_data(Markdown(result.explain()))
        self.output.append_display_data(Image(data=timeline, format="png"))
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


def scaling_dashboard() -> ScalingDashboard:
    """A ready-to-display :class:`ScalingDashboard`."""
    return ScalingDashboard()
