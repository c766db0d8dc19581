"""Notebook 06b's dashboard: the bounded-offload app under an open-loop load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
from IPython.display import Markdown

from helpers.view import web_plots
from helpers.view.widgets import ExperimentDashboard, _check_range, _png


class OffloadDashboard(ExperimentDashboard):
    """Pool size, in-flight bound, shedding on/off, task size and arrival rate → a run
    of the FastAPI app → latency percentiles and how many requests got 200 / 503."""

    def __init__(self, run: Callable[..., Any] | None = None) -> None:
        from helpers.experiments import web_stack

        super().__init__(run or web_stack.offload_run)
        self.pool_workers = W.IntSlider(value=self.usable, min=1, max=4 * self.usable,
                                        description="pool")
        self.max_in_flight = W.IntSlider(value=self.usable, min=1, max=64,
                                         description="in flight")
        self.shed = W.Checkbox(value=True, description="shed with 503")
        self.ms = W.FloatText(value=20.0, description="ms / request")
        self.rate = W.FloatText(value=float(2 * self.usable * 1000 / 20),
                                description="requests/s")
        self.seconds = W.FloatText(value=2.0, description="seconds")

    def controls(self) -> list[W.Widget]:
        return [self.pool_workers, self.max_in_flight, self.shed, self.ms, self.rate,
                self.seconds]

    def parameters(self) -> dict[str, Any]:
        _check_range("pool", self.pool_workers.value, 1, 4 * self.usable)
        _check_range("in flight", self.max_in_flight.value, 1, 64)
        _check_range("ms per request", self.ms.value, 1, 500, " ms")
        _check_range("requests/s", self.rate.value, 1, 2000)
        _check_range("seconds", self.seconds.value, 0.5, 10, " s")
        return {"pool_workers": self.pool_workers.value,
                "max_in_flight": self.max_in_flight.value, "shed": self.shed.value,
                "ms": self.ms.value, "rate": self.rate.value, "seconds": self.seconds.value}

    def draw(self, result: Any) -> list[Any]:
        text = (f"**{result['ok']}** answered (p50 {result['p50_ms']:.0f} ms, p99 "
                f"{result['p99_ms']:.0f} ms), **{result['http_503']}** shed with 503, "
                f"{result['other_errors']} other failures; capacity about "
                f"{result['capacity']:.0f}/s.")
        return [_png(web_plots.shedding_plot([result])), Markdown(text)]


def offload_dashboard() -> OffloadDashboard:
    """The dashboard of notebook 06b."""
    return OffloadDashboard()
