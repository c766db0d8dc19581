"""Busy CPUs over time, sampled from *another* process.

A thread in the kernel could not measure fairly: under the GIL it would wait its turn
like everyone else. So :class:`CpuSampler` starts a small separate process (this
module, run with ``python -m``) that reads the CPU time of the kernel and of all its
children every ``interval`` seconds and prints "time busy_cores" lines::

    with CpuSampler() as sampler:
        run_the_experiment()
    sampler.samples   # [(seconds since start, busy cores), ...]

The sampler exits when it is told to, and by itself if the process it watches ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


class CpuSampler:
    """Context manager: samples this process tree's CPU use from a separate process."""

    def __init__(self, interval: float = 0.05, pid: int | None = None) -> None:
        if not 0.01 <= interval <= 1.0:
            raise ValueError(f"interval must be 0.01 to 1 s, got {interval!r}")
        self.interval = interval
        self.pid = pid or os.getpid()
        self.samples: list[tuple[float, float]] = []
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> CpuSampler:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "helpers.core.cpu_sampler", str(self.pid), str(self.interval)],
            stdout=subprocess.PIPE, text=True)
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the CPU sampler did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(self.interval)  # one more sample after the work
        process, self._process = self._process, None
        process.terminate()
        output, _ = process.communicate(timeout=10)
        for line in output.splitlines():
            t, busy = line.split()
            self.samples.append((float(t), float(busy)))


def _tree_cpu_seconds(root) -> dict[int, float]:
    """CPU seconds (user + system) used so far by ``root`` and each of its descendants."""
    import psutil

    seconds = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def main(pid: int, interval: float) -> None:
    import psutil

    root = psutil.Process(pid)
    before, start = _tree_cpu_seconds(root), time.perf_counter()
    last = start
    print("ready", flush=True)
    while root.is_running():
        time.sleep(interval)
        now_seconds, now = _tree_cpu_seconds(root), time.perf_counter()
        used = sum(max(0.0, s - before.get(p, 0.0)) for p, s in now_seconds.items())
        print(f"{now - start:.4f} {used / (now - last):.3f}", flush=True)
        before, last = now_seconds, now


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
