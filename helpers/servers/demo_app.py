"""The demo web application of notebook 06: a plain WSGI app, so any server can run it.

Routes (all GET except ``/echo``)::

    /              the list of routes
    /cpu?ms=20     burn 20 ms of this process's CPU time in pure Python (CPU-bound)
    /io?ms=20      sleep 20 ms, as if waiting on a database (I/O-bound)
    /whoami        the pid of the process that answered
    /echo          POST: send the body back (at most MAX_BODY_BYTES)

``/cpu`` counts CPU time (``time.process_time``), not wall time: on a busy machine a
request still does the same amount of work, so throughput measures the CPUs, not the
clock. Bad input gets a clear 4xx and the process stays up: a bad ``ms`` is a 400, an
unknown path a 404, a wrong method a 405, a body over the limit a 413.

Run it under the course's pre-fork server (``helpers.servers.prefork.PreforkServer(app)``),
under gunicorn (``gunicorn helpers.servers.demo_app:app``), or under ``wsgiref``. Standard
library only: it runs inside worker processes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

MAX_MS = 5000  # notebook 06b's --timeout demo needs a request well past a second
MAX_BODY_BYTES = 64 * 1024

StartResponse = Callable[..., Any]


class BadRequest(Exception):
    """The request cannot be served; ``status`` says why (a 4xx)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def burn_cpu(ms: float) -> int:
    """Run pure-Python arithmetic until this process has used ``ms`` of CPU time."""
    deadline = time.process_time() + ms / 1000
    rounds = 0
    while time.process_time() < deadline:
        sum(i * i for i in range(200))
        rounds += 1
    return rounds


def _ms(environ: dict[str, Any]) -> float:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    values = query.get("ms", ["10"])
    try:
        ms = float(values[0])
    except ValueError:
        raise BadRequest("400 Bad Request",
                         f"ms must be a number from 0 to {MAX_MS}, got {values[0]!r}") from None
    if not 0 <= ms <= MAX_MS:
        raise BadRequest("400 Bad Request", f"ms must be from 0 to {MAX_MS}, got {ms:g}")
    return ms


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("400 Bad Request", "Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise BadRequest("413 Content Too Large",
                         f"the body may be at most {MAX_BODY_BYTES} bytes, got {length}")
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _answer(path: str, method: str, environ: dict[str, Any]) -> dict[str, Any]:
    if path == "/echo":
        if method != "POST":
            raise BadRequest("405 Method Not Allowed", "/echo takes POST")
        return {"echo": _body(environ).decode("utf-8", "replace")}
    if method not in ("GET", "HEAD"):
        raise BadRequest("405 Method Not Allowed", f"{path} takes GET")
    if path == "/cpu":
        ms = _ms(environ)
        return {"route": "cpu", "ms": ms, "rounds": burn_cpu(ms)}
    if path == "/io":
        ms = _ms(environ)
        time.sleep(ms / 1000)
        return {"route": "io", "ms": ms}
    if path == "/whoami":
        return {"route": "whoami"}
    if path == "/":
        return {"routes": ["/cpu?ms=", "/io?ms=", "/whoami", "POST /echo"]}
    raise BadRequest("404 Not Found", f"no route {path!r}; see / for the routes")


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI application."""
    path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
    try:
        status, payload = "200 OK", _answer(path, method, environ)
    except BadRequest as error:
        status, payload = error.status, {"error": str(error)}
    payload["pid"] = os.getpid()
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]
