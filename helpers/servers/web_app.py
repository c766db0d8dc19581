"""The web-stack demo app of notebook 06b: FastAPI, with a bounded process pool.

Routes (all GET; every answer is JSON and carries the ``pid`` that served it)::

    /cheap              answers at once: the "health check" that should stay fast
    /whoami             the pid of the process that answered
    /cpu_async?ms=20    pure-Python CPU work inside an ``async def``: it runs ON the event
                        loop, and nothing else in this process runs until it is done
    /cpu_sync?ms=20     the same work in a plain ``def``: Starlette runs it in its thread
                        pool (40 threads), so the loop stays free, but with the GIL on the
                        threads and the loop take turns for one interpreter lock
    /cpu_offload?ms=20  the same work in a process pool owned by the app (created in the
                        lifespan, shut down with it), awaited without blocking the loop;
                        beyond ``max_in_flight`` requests it answers 503 + Retry-After
                        at once instead of queueing without limit

``ms`` must be from 0 to :data:`MAX_MS`; outside that range (or not a number) the answer
is a 422 that names the allowed range. Settings come from the environment, read at
startup, so the same import string serves under uvicorn, ``uvicorn --workers N`` and
gunicorn with ``-k uvicorn_worker.UvicornWorker``:

    WEB_POOL_WORKERS   processes in the pool (default: the usable CPUs; 0: no pool)
    WEB_MAX_IN_FLIGHT  CPU requests in the pool at once before shedding (default 2 × pool)
    WEB_SHED           1 (default): answer 503 beyond the bound; 0: queue without limit

Runs in the server process, not in pool workers (they only import ``demo_app.burn_cpu``).
FastAPI is imported only when the app is built (``create_app``, or the first access to
``web_app.app``, which is what uvicorn and gunicorn do), so ``Busy``, ``Gate`` and
``bounded_offload`` (notebook 06b's exercise) import with the standard library only.
"""

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from helpers.core import config, machine, watchdog
from helpers.servers.demo_app import burn_cpu

MAX_MS = 2000
RETRY_AFTER_SECONDS = 1


def burn_thread_cpu(ms: float) -> int:
    """Pure-Python arithmetic until *this thread* has used ``ms`` of CPU time.

    Thread time, not process time: when several of Starlette's threads burn at once, each
    request still does ``ms`` of work of its own (with process time, four threads would
    each stop after a quarter of the work). In a pool worker, ``demo_app.burn_cpu`` is used.
    """
    deadline = time.thread_time() + ms / 1000
    rounds = 0
    while time.thread_time() < deadline:
        sum(i * i for i in range(200))
        rounds += 1
    return rounds


class Busy(Exception):
    """The pool is full: the app answers 503 with ``Retry-After``."""

    def __init__(self, retry_after: int = RETRY_AFTER_SECONDS, in_flight: int = 0) -> None:
        super().__init__(f"busy: {in_flight} CPU requests in flight; retry after "
                         f"{retry_after} s")
        self.retry_after, self.in_flight = retry_after, in_flight


@dataclass
class Gate:
    """How many CPU requests are in the pool now, and how many may be."""

    limit: int
    in_flight: int = 0
    shed: int = 0  # requests answered 503
    peak: int = 0  # most in flight at once


async def bounded_offload(ms: float, pool: Any, gate: Gate) -> int:
    """Run ``burn_cpu(ms)`` in ``pool`` if the gate has room; raise :class:`Busy` if not.

    The check and the increment happen before the first ``await``, so no other request
    can slip in between them (one event loop, one thread); the decrement is in
    ``finally``, so a task that fails (or a worker that dies) gives its place back.
    """
    if gate.in_flight >= gate.limit:
        gate.shed += 1
        raise Busy(RETRY_AFTER_SECONDS, gate.in_flight)
    gate.in_flight += 1
    gate.peak = max(gate.peak, gate.in_flight)
    try:
        return await pool.submit_async(burn_cpu, ms)
    finally:
        gate.in_flight -= 1


def settings() -> dict[str, int | bool]:
    """The app's settings, from the environment (see the module's docstring)."""
    workers = int(os.environ.get("WEB_POOL_WORKERS", machine.usable_cpus()))
    limit = int(os.environ.get("WEB_MAX_IN_FLIGHT", 2 * max(1, workers)))
    shed = os.environ.get("WEB_SHED", "1").strip() not in ("0", "false", "no", "off")
    return {"pool_workers": workers, "max_in_flight": limit if shed else 1_000_000,
            "shedding": shed}


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Start the pool with the app; shut it down (after the requests drain) with it.

    FastAPI runs this once per server process: the code before ``yield`` at start-up, the
    code after it at shutdown, once the requests in flight have been answered."""
    # Under ``uvicorn --workers N`` this process is a multiprocessing child of uvicorn's
    # supervisor: exit if it dies. (Under plain uvicorn or gunicorn this does nothing;
    # their masters watch the kernel for us.)
    watchdog.exit_when_parent_dies()
    chosen = settings()
    pool = None
    if chosen["pool_workers"] > 0:
        from helpers.pool import WorkerPool

        pool = WorkerPool(chosen["pool_workers"], mp_context=config.mp_context(),
                          initializer=watchdog.worker_setup)
    app.state.pool, app.state.settings = pool, chosen
    app.state.gate = Gate(limit=chosen["max_in_flight"])
    try:
        yield
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def route_source(path: str) -> str:
    """The source code of the app's route at ``path`` (notebook 06b shows it)."""
    import inspect
    import textwrap

    routes = create_app().routes
    for route in routes:
        if getattr(route, "path", None) == path:
            return textwrap.dedent(inspect.getsource(route.endpoint))
    raise ValueError(f"the app has no route {path!r}; its routes are "
                     f"{sorted(str(getattr(r, 'path', '?')) for r in routes)}")


def handler_source(error: type[Exception]) -> str:
    """The source code of the app's handler for ``error`` (``Busy``: the 503 answer)."""
    import inspect
    import textwrap

    handlers = create_app().exception_handlers
    if error not in handlers:
        raise ValueError(f"the app has no handler for {error.__name__}; it has handlers "
                         f"for {sorted(getattr(e, '__name__', str(e)) for e in handlers)}")
    return textwrap.dedent(inspect.getsource(handlers[error]))


def create_app() -> Any:
    """Build the FastAPI app (FastAPI is imported here, so that importing this module for
    ``Busy``, ``Gate`` or ``bounded_offload`` needs the standard library only)."""
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    Ms = Annotated[float, Query(ge=0, le=MAX_MS,
                                description=f"CPU milliseconds, 0 to {MAX_MS}")]

    app = FastAPI(title="course web-stack demo", lifespan=lifespan)


    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={
            "error": f"ms must be a number from 0 to {MAX_MS} (milliseconds of CPU work)",
            "allowed": {"ms": [0, MAX_MS]}, "detail": _plain(error.errors()), "pid": os.getpid()})


    def _plain(errors: Any) -> Any:
        """Validation errors with only JSON-safe values (pydantic may include exceptions)."""
        return [{k: v for k, v in e.items() if k in ("loc", "msg", "type", "input")}
                for e in errors]


    @app.exception_handler(Busy)
    async def _busy(request: Request, error: Busy) -> JSONResponse:
        return JSONResponse(status_code=503, headers={"Retry-After": str(error.retry_after)},
                            content={"error": str(error), "pid": os.getpid()})


    @app.get("/cheap")
    async def cheap() -> dict[str, Any]:
        return {"route": "cheap", "pid": os.getpid()}


    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        return {"route": "whoami", "pid": os.getpid()}


    @app.get("/cpu_async")
    async def cpu_async(ms: Ms = 20) -> dict[str, Any]:
        return {"route": "cpu_async", "ms": ms, "rounds": burn_thread_cpu(ms), "pid": os.getpid()}


    @app.get("/cpu_sync")
    def cpu_sync(ms: Ms = 20) -> dict[str, Any]:
        return {"route": "cpu_sync", "ms": ms, "rounds": burn_thread_cpu(ms), "pid": os.getpid()}


    @app.get("/cpu_offload")
    async def cpu_offload(request: Request, ms: Ms = 20) -> Any:
        pool = request.app.state.pool
        if pool is None:
            return JSONResponse(status_code=503, headers={"Retry-After": "60"},
                                content={"error": "this server runs without a pool "
                                                  "(WEB_POOL_WORKERS=0)", "pid": os.getpid()})
        try:
            rounds = await bounded_offload(ms, pool, request.app.state.gate)
        except Busy:
            raise
        except Exception as error:  # the task failed or its worker died: only this request
            return JSONResponse(status_code=503, headers={"Retry-After": "1"},
                                content={"error": f"{type(error).__name__}: {error}",
                                         "pid": os.getpid()})
        return {"route": "cpu_offload", "ms": ms, "rounds": rounds, "pid": os.getpid()}


    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        gate: Gate = request.app.state.gate
        return {"in_flight": gate.in_flight, "peak": gate.peak, "shed": gate.shed,
                "limit": gate.limit, **request.app.state.settings, "pid": os.getpid()}

    return app


def __getattr__(name: str) -> Any:
    """``helpers.servers.web_app:app`` (what uvicorn and gunicorn import) is built on first
    use."""
    if name == "app":
        globals()["app"] = built = create_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
