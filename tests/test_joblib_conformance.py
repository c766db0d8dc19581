"""joblib's own tests of ``Parallel`` (``joblib/test/test_parallel.py``), on "worker-pool".

The requirement: the worker-pool backend passes every case of joblib's test_parallel.py
that joblib's multiprocessing backend passes. This module runs joblib's test functions
themselves (nothing is copied) with worker-pool in their backend lists:

1. worker-pool is registered *before* joblib's test module is imported, so the lists that
   module builds from joblib's registry (``ALL_VALID_BACKENDS``,
   ``RETURN_GENERATOR_BACKENDS``, the tests parametrised over ``BACKENDS``) hold it, as
   they would hold any registered backend;
2. wherever a parametrisation names multiprocessing (``PROCESS_BACKENDS``,
   ``PARALLEL_BACKENDS``, the (parent, child) pairs, ...), the case is added again with
   worker-pool in its place: "multiprocessing" becomes "worker-pool", a
   ``MultiprocessingBackend()`` a ``WorkerPoolBackend()``, a multiprocessing context
   (joblib's multiprocessing backend with that start method) a ``WorkerPoolBackend``
   with that context;
3. each test's parametrisations are multiplied out, and only the cases that use
   worker-pool are kept, each collected here under joblib's test name.

Python processes that the tests start afresh (loky's workers, the scripts they run with
``python`` or ``python -c``) import a ``sitecustomize`` that registers worker-pool there
too, as multiprocessing is known to joblib everywhere.

``JOBLIB_CONFORMANCE_BACKEND=multiprocessing`` runs the same cases (same ids) with
worker-pool swapped back for multiprocessing: the reference. With joblib 1.6.0, of the
178 cases it fails the 44 ``return_as="generator…"`` ones (the multiprocessing backend
refuses them) and skips 6 (functions pickle cannot send); worker-pool passes all 178
(one, marked xfail by joblib, as XPASS on both). A case worker-pool may not pass goes
in :data:`EXCLUDED`, with its reason: only one the reference also fails or skips, or
one that tests a backend's internals.

About 40 to 65 s on two cores (spawn workers: about two minutes), hence ``slow``.
"""

from __future__ import annotations

import functools
import gc
import inspect
import itertools
import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joblib._parallel_backends import MultiprocessingBackend, ParallelBackendBase

from helpers.pool import joblib_backend
from helpers.pool.joblib_backend import WorkerPoolBackend

# joblib's test module uses the marks thread_unsafe and no_cover: pyproject.toml declares
# them, as --strict-markers requires.
joblib_backend.register()  # before joblib's test module builds its backend lists (step 1)
from joblib.test import test_parallel as joblib_tests  # noqa: E402

pytestmark = pytest.mark.slow

WORKER_POOL = joblib_backend.BACKEND_NAME
#: Set to "multiprocessing" to run the reference: the same cases on joblib's backend.
MIRROR = os.environ.get("JOBLIB_CONFORMANCE_BACKEND", WORKER_POOL) == "multiprocessing"

#: Cases left out, "test_name" or "test_name[id]" -> why. None so far.
EXCLUDED: dict[str, str] = {}

#: pytest's own marks, which joblib's functions keep (JOBLIB_MARKS mean nothing here).
KEPT_MARKS = {"skip", "skipif", "xfail", "filterwarnings", "usefixtures"}


# --- swapping multiprocessing and worker-pool ---


def as_worker_pool(value: Any) -> Any:
    """The worker-pool counterpart of a multiprocessing parameter; None for the others."""
    if isinstance(value, str) and value == "multiprocessing":
        return WORKER_POOL
    if isinstance(value, MultiprocessingBackend):
        return WorkerPoolBackend()
    if isinstance(value, multiprocessing.context.BaseContext):
        return WorkerPoolBackend(mp_context=value)
    return None


def as_multiprocessing(value: Any) -> Any:
    """The reverse of :func:`as_worker_pool` (for the reference run)."""
    if isinstance(value, str) and value == WORKER_POOL:
        return "multiprocessing"
    if isinstance(value, WorkerPoolBackend):
        context = value.pool_options.get("mp_context")
        return MultiprocessingBackend() if context is None else context
    return value


def uses_worker_pool(value: Any) -> bool:
    return (isinstance(value, str) and value == WORKER_POOL) or isinstance(
        value, WorkerPoolBackend)


def id_of(value: Any, name: str, index: int) -> str:
    """A parameter's part of a case id: its value where short, else name and position."""
    if isinstance(value, WorkerPoolBackend) and "mp_context" in value.pool_options:
        return f"WorkerPoolBackend-{value.pool_options['mp_context'].get_start_method()}"
    if isinstance(value, str) and "\n" not in value and len(value) <= 40:
        return value
    if isinstance(value, (int, float, type(None))):
        return str(value)
    if isinstance(value, type) or inspect.isfunction(value):
        return value.__name__
    if isinstance(value, ParallelBackendBase):
        return type(value).__name__
    return f"{name}{index}"


# --- building the cases ---


def argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0]
    return [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]


def parameter_sets(mark: pytest.Mark) -> Iterator[tuple[tuple, list, str]]:
    """(values, marks, id) for each case of one ``parametrize`` mark, worker-pool's added."""
    names, ids = argnames(mark), mark.kwargs.get("ids")
    for index, value in enumerate(mark.args[1]):
        marks, given_id = [], None
        if isinstance(value, pytest.ParameterSet):
            value, marks, given_id = value.values, list(value.marks), value.id
            value = value[0] if len(names) == 1 else value
        row = (value,) if len(names) == 1 else tuple(value)
        if given_id is None and ids is not None:
            given_id = ids[index]

        def case_id(values: tuple, index: int = index) -> str:
            return "-".join(id_of(v, n, index) for v, n in zip(values, names, strict=True))

        yield row, marks, given_id or case_id(row)
        swapped = [as_worker_pool(v) for v in row]
        positions = [i for i, v in enumerate(swapped) if v is not None]
        for count in range(1, len(positions) + 1):  # every non-empty subset swapped
            for chosen in itertools.combinations(positions, count):
                new = tuple(swapped[i] if i in chosen else v for i, v in enumerate(row))
                yield new, marks, case_id(new)


def conformance_cases(test: Callable[..., Any]) -> Callable[..., Any] | None:
    """``test`` re-parametrised with only its worker-pool cases; None if it has none."""
    marks = list(getattr(test, "pytestmark", []))
    parametrize = [m for m in marks if m.name == "parametrize"]  # pytest's order for ids
    if not parametrize:
        return None
    names = [name for mark in parametrize for name in argnames(mark)]
    cases, seen = [], set()
    for combination in itertools.product(*(list(parameter_sets(m)) for m in parametrize)):
        values = tuple(v for row, _, _ in combination for v in row)
        case_id = "-".join(i for _, _, i in combination)
        if case_id in seen or not any(map(uses_worker_pool, values)):
            continue
        seen.add(case_id)
        case_marks = [m for _, ms, _ in combination for m in ms]
        reason = EXCLUDED.get(f"{test.__name__}[{case_id}]") or EXCLUDED.get(test.__name__)
        if reason:
            case_marks.append(pytest.mark.skip(reason=reason))
        if MIRROR:
            values = tuple(map(as_multiprocessing, values))
        cases.append(pytest.param(*values, marks=case_marks, id=case_id))
    if not cases:
        return None

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return test(*args, **kwargs)

    run.pytestmark = [m for m in marks if m.name in KEPT_MARKS]
    run.pytestmark.append(pytest.mark.parametrize(names, cases))
    return run


for _name, _test in sorted(vars(joblib_tests).items()):
    if _name.startswith("test_") and callable(_test):
        _cases = conformance_cases(_test)
        if _cases is not None:
            globals()[_name] = _cases


# --- the environment ---


@pytest.fixture(scope="module", autouse=True)
def worker_pool_in_fresh_processes(tmp_path_factory):
    """Fresh interpreters (loky's workers, scripts) register worker-pool at start-up."""
    folder = tmp_path_factory.mktemp("register-worker-pool")
    (folder / "sitecustomize.py").write_text(
        "from helpers.pool import joblib_backend\njoblib_backend.register()\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(
            [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))
        joblib_backend.stop_loky_workers()  # loky's next workers start with it
        yield
    joblib_backend.stop_loky_workers()


@pytest.fixture(autouse=True)
def no_process_left():
    """Before the suite's check for leftover processes: stop loky's workers, which loky
    keeps for reuse, and free a test's ``mp.Manager()``, which a reference cycle (its
    ``Parallel`` and backend) keeps alive until the cycle is collected."""
    yield
    joblib_backend.stop_loky_workers()
    if multiprocessing.active_children():
        gc.collect()


def test_every_exclusion_names_a_case():
    """A stale entry in EXCLUDED (a test joblib renamed) would hide nothing."""
    module = sys.modules[__name__]
    names = {name for name in vars(module) if name.startswith("test_")}
    assert {key.split("[")[0] for key in EXCLUDED} <= names
