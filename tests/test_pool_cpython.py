"""CPython's own ``test_concurrent_futures`` suite, with WorkerPool as the executor.

CPython tests ``ProcessPoolExecutor`` with mixins (``ProcessPoolForkMixin`` and friends:
``executor_type``, ``ctx``, ``get_context``). Here the same test classes (executor, wait,
as_completed, initializer, shutdown, deadlock) are combined with WorkerPool mixins for
fork, forkserver and spawn, as unittest classes that pytest runs: CPython's behaviour is
the reference for WorkerPool's.

* ``EXCLUDED``: tests that read ProcessPoolExecutor's internals (``_processes``,
  ``_executor_manager_thread``, ...) or test something only ProcessPoolExecutor has.
  They are reported as skipped, with the reason.
* ``KNOWN_FAILURES``: behaviour WorkerPool gets wrong (or does differently), as strict
  xfails: a fix makes the test pass, and the strict xfail then fails until its entry
  is removed. ``INTERMITTENT_FAILURES``: the same for failures that come and go.

CPython's ``test`` package ships with the interpreter but not always (not in the
course's Python 3.11 ``.venv``): without it the module is skipped, saying so.
``make test-other-python`` runs it in ``.venv-other`` (the newest pyenv Python 3.12+).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
import unittest
import unittest.mock

import pytest

try:
    from test import support
    from test.support import threading_helper
    from test.test_concurrent_futures import (
        test_as_completed,
        test_deadlock,
        test_init,
        test_process_pool,
        test_shutdown,
        test_wait,
    )
    from test.test_concurrent_futures import util as cf_util
except (ImportError, unittest.SkipTest) as error:
    pytest.skip(f"CPython's test.test_concurrent_futures is not importable in "
                f"{sys.executable} ({error}); make test-other-python runs this file",
                allow_module_level=True)

import helpers
from helpers.pool import WorkerPool

HELPERS_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(helpers.__file__)))
pytestmark = pytest.mark.slow  # about 2 minutes in all

#: CPython's test classes (mixins without an executor) that run with WorkerPool.
#: test_future (Future alone) and test_thread_pool (threads only) have no executor to swap.
CPYTHON_TESTS = (
    test_process_pool.ProcessPoolExecutorTest,  # and executor.ExecutorTest, its base
    test_wait.WaitTests,
    test_as_completed.AsCompletedTests,
    test_init.InitializerMixin,
    test_init.FailingInitializerMixin,
    test_shutdown.ProcessPoolShutdownTest,  # and ExecutorShutdownTest, its base
    test_deadlock.ExecutorDeadlockTest,
)
START_METHODS = ("fork", "forkserver", "spawn")

# "CPython class.test" -> why it does not run with WorkerPool (shown as the skip reason).
EXCLUDED = {
    # ProcessPoolExecutorTest
    "ProcessPoolExecutorTest.test_killed_child":
        "finds a worker through _processes (WorkerPool also deliberately survives a "
        "crash: only the crashed task fails, with WorkerCrashed, a BrokenProcessPool)",
    "ProcessPoolExecutorTest.test_saturation": "counts _processes",
    "ProcessPoolExecutorTest.test_idle_process_reuse_one":
        "counts _processes (ProcessPoolExecutor starts workers on demand; WorkerPool "
        "starts them all at once)",
    "ProcessPoolExecutorTest.test_idle_process_reuse_multiple": "counts _processes",
    "ProcessPoolExecutorTest.test_max_tasks_per_child":
        "counts _processes, and expects fork to refuse max_tasks_per_child (WorkerPool "
        "supports it under fork: an extension); tests/test_pool.py covers recycling",
    "ProcessPoolExecutorTest.test_max_tasks_per_child_defaults_to_spawn_context":
        "reads _mp_context; the spawn default is ProcessPoolExecutor's own rule",
    "ProcessPoolExecutorTest.test_python_finalization_error":
        "mocks thread creation to fail ProcessPoolExecutor's second, lazily started "
        "thread (its queue feeder); WorkerPool starts its threads in __init__",
    # ProcessPoolShutdownTest: these name futures.ProcessPoolExecutor itself, or its parts
    "ProcessPoolShutdownTest.test_processes_terminate": "counts and joins _processes",
    "ProcessPoolShutdownTest.test_context_manager_shutdown":
        "builds a futures.ProcessPoolExecutor itself and joins its _processes",
    "ProcessPoolShutdownTest.test_del_shutdown":
        "builds a futures.ProcessPoolExecutor itself and joins its _processes, "
        "_call_queue and _executor_manager_thread",
    "ProcessPoolShutdownTest.test_shutdown_no_wait":
        "builds a futures.ProcessPoolExecutor itself and joins its _processes, "
        "_call_queue and _executor_manager_thread",
    # ExecutorDeadlockTest
    "ExecutorDeadlockTest.test_shutdown_deadlock_pickle":
        "joins _executor_manager_thread; its behaviour (an unpicklable task fails "
        "with PicklingError) is test_error_at_task_pickle's",
    "ExecutorDeadlockTest.test_gh105829_should_not_deadlock_if_wakeup_pipe_full":
        "patches ProcessPoolExecutor's _ExecutorManagerThread and _ThreadWakeup",
}

# "CPython class.test" (all start methods) or "CPython class.test[method]" -> what
# WorkerPool gets wrong. Strict xfails: remove an entry when its fix lands.
# (ProcessPoolShutdownTest.test_cancel_futures was one until a submit that finds an idle
# worker began to send its task at once: shutdown(cancel_futures=True) now leaves those
# running, as CPython's manager thread does.)
KNOWN_FAILURES: dict[str, str] = {}

# Failures that come and go: a non-strict xfail (a pass does not fail the run) and a short
# timeout (they hang). Move an entry to KNOWN_FAILURES when it fails every time, or delete
# it when it is fixed.
INTERMITTENT_FAILURES: dict[str, str] = {}
INTERMITTENT_TIMEOUT = 20  # seconds; the test takes well under one when it passes


# --- WorkerPool in place of ProcessPoolExecutor ---


#: Every WorkerPool the running test made (CPython's tests make their own besides
#: self.executor), so that a test that fails midway leaves none running.
_pools_made: list[WorkerPool] = []


def _worker_pool(*args, **kwargs) -> WorkerPool:
    pool = WorkerPool(*args, **kwargs)
    _pools_made.append(pool)
    return pool


_worker_pool.__name__ = _worker_pool.__qualname__ = "WorkerPool"  # the scripts' import


class LeakCheckedTestCase(cf_util.BaseTestCase):
    """CPython's BaseTestCase (thread count around each test), made strict: in CPython a
    leaked thread only warns and marks the run "environment altered"; here the test fails.

    A test that fails midway (a known failure, say) skips its own clean-up: its pools are
    terminated and the processes it started are killed before the check, so that only the
    failure is reported, and no later test inherits what it left."""

    def setUp(self):
        support.environment_altered = False
        _pools_made.clear()
        self._children_before = {p.pid for p in multiprocessing.active_children()}
        super().setUp()

    test_failed = False  # set by the test method's wrapper (see _wrapped)

    def tearDown(self):
        """BaseTestCase.tearDown's two checks, without calling it: reap_children's warning
        is no leak here. conftest makes pytest a child subreaper, so the helpers of a
        script's own processes (its forkserver, its resource tracker) end as pytest's
        zombies. Processes still running are conftest's no_leftover_processes' to find."""
        if self.test_failed:
            self._clean_up_after_failure()
        _pools_made.clear()
        support.environment_altered = False
        threading_helper.threading_cleanup(*self._thread_key)
        threads_left = support.environment_altered
        support.reap_children()
        support.environment_altered = False
        if threads_left:
            self.fail("the test left a thread running (see the 'Warning -- ' lines on stderr)")

    def _clean_up_after_failure(self):
        for pool in _pools_made:
            pool.terminate()
        for process in multiprocessing.active_children():
            if process.pid not in self._children_before:
                process.kill()
                process.join(10)


class WorkerPoolMixin(cf_util.ExecutorMixin):
    executor_type = staticmethod(_worker_pool)
    ctx: str

    def get_context(self):
        if self.ctx not in multiprocessing.get_all_start_methods():
            self.skipTest(f"no {self.ctx} start method on this platform")
        return multiprocessing.get_context(self.ctx)


class WorkerPoolForkMixin(WorkerPoolMixin):
    ctx = "fork"


class WorkerPoolForkserverMixin(WorkerPoolMixin):
    ctx = "forkserver"


class WorkerPoolSpawnMixin(WorkerPoolMixin):
    ctx = "spawn"


MIXINS = {"fork": WorkerPoolForkMixin, "forkserver": WorkerPoolForkserverMixin,
          "spawn": WorkerPoolSpawnMixin}


# --- what some CPython classes need to run against WorkerPool ---

#: The scripts of the subprocess tests import the executor by name from concurrent.futures;
#: test_hang_gh83386's script calls multiprocessing.set_start_method without importing
#: multiprocessing (CPython only ever runs it for ThreadPoolExecutor).
#: The script imports the helpers package this process imports (assert_python_ok runs
#: Python in isolated mode, with neither the working directory nor PYTHONPATH on its path).
SCRIPT_IMPORT = "from concurrent.futures import WorkerPool"
SCRIPT_IMPORT_HERE = (f"import sys; sys.path.insert(0, {HELPERS_ROOT!r}); "
                      "import multiprocessing; from helpers.pool import WorkerPool")


class ShutdownAdapter:
    """Runs ExecutorShutdownTest's subprocess scripts with WorkerPool in them."""

    def setUp(self):
        original = test_shutdown.assert_python_ok

        def assert_python_ok(*args, **env_vars):
            script = args[-1]
            assert SCRIPT_IMPORT in script, f"CPython's script changed:\n{script}"
            return original(*args[:-1], script.replace(SCRIPT_IMPORT, SCRIPT_IMPORT_HERE),
                            **env_vars)

        patcher = unittest.mock.patch.object(test_shutdown, "assert_python_ok",
                                             assert_python_ok)
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()


class DeadlockAdapter:
    """A deadlock fails after a minute, not CPython's five (pytest-timeout's limit), and
    is broken up with terminate() instead of through ProcessPoolExecutor's _processes."""

    TIMEOUT = 60

    def _fail_on_deadlock(self, executor):
        import faulthandler
        from tempfile import TemporaryFile

        with TemporaryFile(mode="w+") as f:
            faulthandler.dump_traceback(file=f)
            f.seek(0)
            tb = f.read()
        executor.terminate()
        executor.shutdown(wait=True)
        self.fail(f"Executor deadlock:\n\n{tb}")


ADAPTERS = {
    test_shutdown.ProcessPoolShutdownTest: (ShutdownAdapter,),
    test_deadlock.ExecutorDeadlockTest: (DeadlockAdapter,),
}


# --- the test classes ---


def _test_names(cls) -> list[str]:
    return [name for name in dir(cls) if name.startswith("test") and callable(getattr(cls, name))]


def _wrapped(method, mark=None):
    """``method``, noting whether it failed, with ``mark`` (a skip or an xfail) if given.
    A copy: the CPython method itself is shared by every class that runs it."""

    @functools.wraps(method)
    def test(self):
        try:
            return method(self)
        except unittest.SkipTest:
            raise
        except BaseException:
            self.test_failed = True
            raise

    return test if mark is None else mark(test)


def _class_name(cpython_class, method: str) -> str:
    return f"WorkerPool{method.capitalize()}_{cpython_class.__name__}"


def _mark(cpython_class, name: str, method: str | None):
    """The skip (EXCLUDED), strict xfail (KNOWN_FAILURES) or non-strict xfail with a short
    timeout (INTERMITTENT_FAILURES) for a test, or None."""
    key = f"{cpython_class.__name__}.{name}"
    if key in EXCLUDED:
        return unittest.skip(f"excluded: {EXCLUDED[key]}")
    reason = KNOWN_FAILURES.get(f"{key}[{method}]") or KNOWN_FAILURES.get(key)
    if reason is not None:
        return pytest.mark.xfail(strict=True, reason=reason)
    reason = INTERMITTENT_FAILURES.get(f"{key}[{method}]") or INTERMITTENT_FAILURES.get(key)
    if reason is not None:
        def mark(test):
            test = pytest.mark.xfail(strict=False, reason=f"intermittent: {reason}")(test)
            return pytest.mark.timeout(INTERMITTENT_TIMEOUT)(test)
        return mark
    return None


def _make_class(cpython_class, method: str):
    namespace = {"__module__": __name__, "__qualname__": _class_name(cpython_class, method)}
    for name in _test_names(cpython_class):
        namespace[name] = _wrapped(getattr(cpython_class, name),
                                   _mark(cpython_class, name, method))
    bases = (*ADAPTERS.get(cpython_class, ()), cpython_class, MIXINS[method],
             LeakCheckedTestCase)
    return type(namespace["__qualname__"], bases, namespace)


#: (CPython class name, start method) -> its WorkerPool test class, also a module global
#: (pytest collects the unittest classes it finds there).
CLASSES = {(cls.__name__, method): _make_class(cls, method)
           for cls in CPYTHON_TESTS for method in START_METHODS}
globals().update({cls.__name__: cls for cls in CLASSES.values()})


class FailingInitializerResources:
    """gh-104090 (test_init.FailingInitializerResourcesTest): a failing initializer leaves
    nothing for the resource tracker to clean up; run with the WorkerPool classes."""

    def test_spawn(self):
        self._test(CLASSES["FailingInitializerMixin", "spawn"])

    def test_forkserver(self):
        self._test(CLASSES["FailingInitializerMixin", "forkserver"])


WorkerPool_FailingInitializerResourcesTest = type(
    "WorkerPool_FailingInitializerResourcesTest",
    (test_init.FailingInitializerResourcesTest,),
    {"__module__": __name__,
     **{name: _wrapped(getattr(FailingInitializerResources, name),
                       _mark(test_init.FailingInitializerResourcesTest, name, None))
        for name in ("test_spawn", "test_forkserver")}})
#: Every CPython class whose tests run here (the lists may name any of their tests).
ALL_CPYTHON_TESTS = (*CPYTHON_TESTS, test_init.FailingInitializerResourcesTest)


# --- the module's set-up and tear-down ---

_module_threads = None


def setUpModule():
    """CPython's setup_module registers unittest module cleanups, which pytest does not run,
    and multiprocessing.util._cleanup_tests among them, which would stop the forkserver and
    resource tracker and run every multiprocessing finalizer in pytest's shared process.
    What is kept: the thread count at the start and end of the module must match."""
    global _module_threads
    _module_threads = threading_helper.threading_setup()


def tearDownModule():
    support.environment_altered = False
    threading_helper.threading_cleanup(*_module_threads)
    threads_left = support.environment_altered
    support.reap_children()  # as LeakCheckedTestCase.tearDown: zombies are no leak here
    support.environment_altered = False
    if threads_left:
        raise AssertionError("the CPython tests left a thread running "
                             "(see the 'Warning -- ' lines on stderr)")


def test_the_lists_name_real_cpython_tests():
    """An entry of EXCLUDED or KNOWN_FAILURES that names no test is a typo, or CPython
    renamed the test: either way the list no longer says what it seems to."""
    known = {f"{cls.__name__}.{name}" for cls in ALL_CPYTHON_TESTS
             for name in _test_names(cls)}
    listed = [*EXCLUDED, *KNOWN_FAILURES, *INTERMITTENT_FAILURES]
    for key in listed:
        name, _, method = key.partition("[")
        assert name in known, f"{key!r} is not a CPython test that this file runs"
        assert not method or method.rstrip("]") in START_METHODS, key
    assert len(listed) == len(set(listed)), "a test is in more than one list"
