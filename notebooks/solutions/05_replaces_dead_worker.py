# Exercise 05.3: fail the dead worker's task, then put a new worker in its place.
from concurrent.futures.process import BrokenProcessPool

from helpers.pool.build_a_pool.step4_crashes import CrashSafePool


class AnswerPool(CrashSafePool):
    def _replace(self, dead, futures):
        dead["process"].join()
        futures[dead["task"]].set_exception(BrokenProcessPool(
            f"worker pid {dead['process'].pid} died (exit code {dead['process'].exitcode})"))
        self._workers[self._workers.index(dead)] = self._start()
        self.replaced += 1
