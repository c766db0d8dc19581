"""The cluster pattern: pre-fork server, supervisor, load generator, asyncio server, gunicorn.

Each test stops what it starts; the leftover-process guard in conftest checks that
nothing survives, grandchildren included.
"""

import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest
from conftest import orphans_after_killing_parent, still_alive

from helpers.experiments import server_load
from helpers.servers import asyncio_server, demo_app, gunicorn_run, loadgen, prefork
from helpers.tasks import faults

METHODS = ["fork", "spawn"]


def get(url, timeout=10):
    """(status, JSON body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw(address, data: bytes, timeout=10) -> bytes:
    """Send raw bytes, return everything the server answers before closing."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_a_request_in_flight(pids, seconds=30):
    """Until one of the workers ``pids`` holds an accepted connection: a request it is
    serving (rather than sleeping and hoping the request got there)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in pids:
            try:
                process = psutil.Process(pid)
                listing = getattr(process, "net_connections", None) or process.connections
                connections = listing("tcp")  # net_connections: psutil 6+
            except psutil.Error:
                continue
            if any(c.status == psutil.CONN_ESTABLISHED for c in connections):
                return
        time.sleep(0.02)
    pytest.fail(f"no worker of {pids} accepted the request within {seconds} s")


def tree_cpu_seconds(pid) -> float:
    """CPU seconds used so far by ``pid`` and its descendants."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


# --- the demo app alone ---


def call(path, method="GET", query="", body=b""):
    answer = {}
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    payload = b"".join(demo_app.app(environ, lambda status, headers: answer.update(s=status)))
    return answer["s"], json.loads(payload)


def test_demo_app_routes_and_bad_input():
    assert call("/cpu", query="ms=5")[0] == "200 OK"
    assert call("/io", query="ms=1")[1]["route"] == "io"
    assert call("/whoami")[1]["pid"] == os.getpid()
    assert call("/echo", "POST", body=b"hello")[1]["echo"] == "hello"
    status, payload = call("/cpu", query="ms=lots")
    assert status == "400 Bad Request" and "ms must be a number" in payload["error"]
    assert call("/cpu", query="ms=99999")[0] == "400 Bad Request"
    assert call("/nowhere")[0] == "404 Not Found"
    assert call("/cpu", "DELETE")[0] == "405 Method Not Allowed"
    assert call("/echo", "POST", body=b"x" * (demo_app.MAX_BODY_BYTES + 1))[0].startswith("413")


def test_cpu_route_counts_cpu_time_not_wall_time():
    cpu = time.process_time()
    demo_app.burn_cpu(30)
    assert time.process_time() - cpu >= 0.03


# --- the pre-fork server ---


@pytest.mark.parametrize("method", METHODS)
def test_every_worker_serves_on_one_port(method):
    with prefork.PreforkServer(workers=2, start_method=method) as server:
        assert len(set(server.pids)) == 2
        result = prefork.load(server.url + "/cpu?ms=5", requests=60, concurrency=4)
        assert result.ok == 60 and result.failures == 0
        assert set(result.pids) == set(server.pids)  # both workers took requests
        expected = "inherited" if method == "fork" else "passed"
        assert server.socket_handover == expected
        assert f"*{expected}*" in prefork.explain_socket_handover(server)
        assert f"**{method}**" in prefork.explain_socket_handover(server)
    assert not still_alive(server.pids, 5)


def test_so_reuseport_mode_serves_too():
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("this OS has no SO_REUSEPORT")
    with prefork.PreforkServer(workers=2, reuse_port=True) as server:
        result = prefork.load(server.url + "/whoami", requests=40, concurrency=4)
        assert result.ok == 40
        assert server.socket_handover == "own"
        assert "SO_REUSEPORT" in prefork.explain_socket_handover(server)


def test_bad_requests_get_4xx_and_the_workers_stay_up():
    with prefork.PreforkServer(workers=2, request_timeout=1.0) as server:
        pids = set(server.pids)
        assert raw(server.address, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.0 400")
        assert raw(server.address, b"\x00\xff garbage \r\n\r\n").split(b" ")[1] == b"400"
        big = (b"POST /echo HTTP/1.0\r\nContent-Length: 10000000\r\n\r\n")
        assert b" 413 " in raw(server.address, big).split(b"\r\n")[0] + b" "
        assert get(server.url + "/cpu?ms=-3")[0] == 400
        assert get(server.url + "/teapot")[0] == 404
        assert b" 414 " in raw(server.address, b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n")[:20]
        assert get(server.url + "/whoami")[0] == 200
        assert set(server.pids) == pids and server.restarts() == 0


def test_a_slow_client_does_not_block_the_others():
    with prefork.PreforkServer(workers=2, request_timeout=1.0) as server:
        slow = socket.create_connection(server.address)  # connects, then sends nothing
        slow.sendall(b"GET /whoami HTTP/1.0\r\n")
        try:
            result = prefork.load(server.url + "/whoami", requests=30, concurrency=2)
            assert result.ok == 30
            slow.settimeout(5)
            assert slow.recv(100) == b""  # dropped after request_timeout
        finally:
            slow.close()


@pytest.mark.parametrize("method", METHODS)
def test_the_supervisor_replaces_a_killed_worker(method):
    with prefork.PreforkServer(workers=2, start_method=method) as server:
        victim = server.pids[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30  # a spawned replacement on a busy machine: seconds
        pids = server.pids
        while (victim in pids or len(pids) < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
            pids = server.pids
        assert victim not in pids and len(pids) == 2
        kinds = [(e.kind, e.pid) for e in server.events]
        assert ("died", victim) in kinds and server.restarts() == 1
        assert get(server.url + "/whoami")[0] == 200


def test_a_crash_looping_worker_is_restarted_with_growing_delays():
    """The back-off the supervisor *schedules* (0.1, 0.2, 0.4, 0.8 s), not wall-clock gaps,
    which also hold how long each failed start took (long under spawn or on a busy CPU)."""

    def backoffs():  # slot 0's; a worker killed after a full MIN_UPTIME restarts at once (0 s)
        return list(itertools.dropwhile(lambda d: d == 0.0,
                                        [d for slot, d in server.restart_delays if slot == 0]))

    with prefork.PreforkServer(workers=2) as server:
        server.worker_init = faults.exit_abruptly  # every new worker now dies at once
        os.kill(server.pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(backoffs()) < 4:
            assert time.monotonic() < deadline, f"only {backoffs()} scheduled in 60 s"
            time.sleep(0.05)
        first = prefork.FIRST_BACKOFF_SECONDS
        assert backoffs()[:4] == pytest.approx([first, 2 * first, 4 * first, 8 * first])
        failures = [e for e in server.events if e.kind == "failed to start" and e.slot == 0]
        assert len(failures) >= 3  # each doubling follows a start that failed
        assert get(server.url + "/whoami")[0] == 200  # the other worker still serves
        server.worker_init = None  # fixed: the next try succeeds
        deadline = time.monotonic() + 30  # the back-off may have reached its 5 s cap by now
        while len(server.pids) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.pids) == 2


@pytest.mark.parametrize("method", METHODS)
def test_rolling_restart_under_load_loses_no_request(method):
    with prefork.PreforkServer(workers=2, start_method=method) as server:
        before = set(server.pids)
        # 6 s: a spawned replacement on a busy 2-CPU machine can take seconds to be ready
        run = prefork.start_load(server.url + "/cpu?ms=3", requests=100_000, concurrency=6,
                                 max_seconds=6.0)
        time.sleep(0.6)
        after = set(server.rolling_restart())
        result = run.result()
        assert not before & after and len(after) == 2
        assert result.failures == 0 and result.ok > 0, result.failure_kinds()
        # The first new worker served part of the load (the second may be ready only as
        # the load ends, when starting it is slow), and only new workers serve now.
        assert set(result.pids) & after
        assert set(prefork.load(server.url + "/whoami", requests=20, concurrency=4).pids) <= after


def test_graceful_stop_finishes_the_request_in_flight():
    server = prefork.PreforkServer(workers=2, grace_seconds=10).start()
    answers = []
    thread = threading.Thread(target=lambda: answers.append(get(server.url + "/cpu?ms=700")))
    thread.start()
    wait_for_a_request_in_flight(server.pids)
    server.stop()
    thread.join(10)
    assert answers and answers[0][0] == 200
    # exit code 0: every worker finished and left by itself, none was killed at the end of
    # the 10 s grace period (which a wall-clock bound would check less surely)
    assert all(e.detail == "exit code 0" for e in server.events if e.kind == "stopped")


def test_sigterm_stops_a_script_gracefully():
    process = subprocess.Popen([sys.executable, "-m", "helpers.servers.prefork", "--workers", "2"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = line.split()[1]
        pids = json.loads(line.split(" workers ")[1])
        answers = []
        thread = threading.Thread(target=lambda: answers.append(get(url + "/io?ms=700")))
        thread.start()
        wait_for_a_request_in_flight(pids)
        process.send_signal(signal.SIGTERM)
        thread.join(10)
        assert process.wait(15) == 0
        assert answers and answers[0][0] == 200
        assert not still_alive(pids, 5)
    finally:
        process.kill()
        process.wait()


PARENT_SCRIPT = """
import sys, time
from helpers.servers import prefork
if __name__ == "__main__":
    server = prefork.PreforkServer(workers=2, start_method=sys.argv[1]).start()
    print(*server.pids, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("method", METHODS)
def test_workers_exit_when_the_parent_dies(method, tmp_path):
    assert orphans_after_killing_parent(PARENT_SCRIPT, method, tmp_path) == set()


def test_bad_parameters_say_what_is_allowed():
    with pytest.raises(ValueError, match="not a loopback address"):
        prefork.PreforkServer(host="0.0.0.0")
    with pytest.raises(ValueError, match="workers must be a whole number"):
        prefork.PreforkServer(workers=0)
    with pytest.raises(ValueError, match="not a loopback address"):
        prefork.load("http://192.0.2.1:80/")
    with pytest.raises(ValueError, match="url must look like"):
        prefork.load("127.0.0.1/cpu")
    with pytest.raises(ValueError, match="concurrency must be"):
        prefork.load("http://127.0.0.1:9/", concurrency=0)
    with pytest.raises(ValueError, match="route must be one of"):
        server_load.route_url("http://127.0.0.1:1", "disk", 5)


# --- the load generator ---


def test_load_against_nothing_reports_failures_and_does_not_hang():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    result = prefork.load(f"http://127.0.0.1:{port}/", requests=20, concurrency=4)
    assert result.requests == 20 and result.ok == 0 and result.failures == 20
    assert "ConnectionRefusedError" in result.failure_kinds()


def test_load_is_bounded_in_time_and_reports_percentiles():
    with prefork.PreforkServer(workers=2) as server:
        result = prefork.load(server.url + "/io?ms=20", requests=100_000, concurrency=4,
                              max_seconds=0.6)
    # 100,000 requests of 20 ms on 4 connections would take 500 s: the bound stops it
    assert result.wall_seconds < 10 and 0 < result.requests < 1000
    assert result.percentile(50) <= result.percentile(95) <= result.percentile(99)
    assert result.percentile(50) >= 0.02
    assert result.cpu_seconds > 0
    starts, answered, failed = loadgen.per_interval(result, 0.1)
    assert sum(answered) == result.ok and sum(failed) == 0


# --- one asyncio process, CPU inline or offloaded ---


@pytest.mark.parametrize("mode", asyncio_server.MODES)
def test_async_server_serves_and_rejects_bad_requests(mode):
    with asyncio_server.AsyncAppServer(mode, workers=2, request_timeout=1.0) as server:
        status, payload = get(server.url + "/cpu?ms=5")
        assert status == 200
        assert (payload["pid"] == server.pid) is (mode == "inline")  # offloaded: a worker
        assert get(server.url + "/cpu?ms=x")[0] == 400
        assert raw(server.address, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.0 400")
        big = b"POST /echo HTTP/1.0\r\nContent-Length: 10000000\r\n\r\n"
        assert raw(server.address, big).startswith(b"HTTP/1.0 413")
        slow = socket.create_connection(server.address)
        try:
            assert prefork.load(server.url + "/io?ms=5", requests=20, concurrency=4).ok == 20
        finally:
            slow.close()
        pid = server.pid
    assert not still_alive([pid], 5)


def test_the_offload_server_sheds_cpu_requests_past_its_bound_and_keeps_serving():
    """One worker, at most 2 CPU requests in flight, 8 clients: the rest get 503 at once."""
    with asyncio_server.AsyncAppServer("offload", workers=1, max_in_flight=2) as server:
        result = prefork.load(server.url + "/cpu?ms=1000", requests=8, concurrency=8)
        assert set(result.statuses) <= {200, 503}
        assert result.ok >= 2, "the requests within the bound were not served"
        assert result.statuses.count(503) >= 1, "nothing was shed past the bound"
        assert result.failure_kinds() == {"HTTP 503": result.statuses.count(503)}
        assert get(server.url + "/cpu?ms=5")[0] == 200  # once the load is gone, it serves
        assert get(server.url + "/io?ms=1")[0] == 200  # other routes are not bounded
    with pytest.raises(ValueError, match="max_in_flight"):
        asyncio_server.AsyncAppServer("offload", workers=1, max_in_flight=0)


def test_offloading_keeps_the_loop_answering_while_cpu_work_runs():
    results = {}
    for mode in asyncio_server.MODES:
        with asyncio_server.AsyncAppServer(mode, workers=2) as server:
            cpu_before = tree_cpu_seconds(server.pid)
            busy = prefork.start_load(server.url + "/cpu?ms=300", requests=8, concurrency=2)
            deadline = time.monotonic() + 30  # until the CPU work is really running
            while tree_cpu_seconds(server.pid) < cpu_before + 0.05:
                assert time.monotonic() < deadline, f"{mode}: the /cpu requests never ran"
                time.sleep(0.01)
            quick = prefork.load(server.url + "/io?ms=1", requests=5, concurrency=1)
            busy.result()
            results[mode] = quick.percentile(50)
    # inline: a /io request waits behind 300 ms of CPU work; offloaded it does not
    assert results["offload"] < results["inline"]


# --- gunicorn ---


needs_gunicorn = pytest.mark.skipif(gunicorn_run.available() is not None,
                                    reason=str(gunicorn_run.available()))


@needs_gunicorn
def test_gunicorn_serves_the_same_app_and_stops():
    with gunicorn_run.GunicornServer(workers=2) as server:
        pids = server.pids
        result = prefork.load(server.url + "/cpu?ms=5", requests=40, concurrency=4)
        assert result.ok == 40 and set(result.pids) <= set(pids)
        master = server.master_pid
    assert not still_alive([master, *pids], 10)


@needs_gunicorn
def test_gunicorn_exits_when_its_parent_dies(tmp_path):
    script = """
import sys, time
from helpers.servers import gunicorn_run
server = gunicorn_run.GunicornServer(workers=2).__enter__()
print(server.master_pid, *server.pids, flush=True)
time.sleep(60)
"""
    assert orphans_after_killing_parent(script, "fork", tmp_path) == set()


@needs_gunicorn
@pytest.mark.slow
def test_copy_on_write_measures_each_configuration():
    rows = server_load.copy_on_write(workers=2, rows=50_000)
    configs = {r["config"] for r in rows}
    assert configs == {"no --preload", "--preload", "--preload + gc.freeze()"}
    assert all(r["uss_mib"] > 0 for r in rows)
    assert {r["moment"] for r in rows} == {moment for moment, _ in server_load.MOMENTS}


# --- notebook 06's experiments and their explanations ---


def test_kill_during_load_is_reported_honestly():
    killed = server_load.kill_during_load(workers=2, seconds=1.2)
    assert killed.pids_before[0] not in killed.pids_after and len(killed.pids_after) == 2
    assert any(e.kind == "died" and e.pid == killed.pids_before[0] for e in killed.events)
    assert killed.result.ok > 0
    restart = server_load.rolling_restart_under_load(workers=2, seconds=1.2)
    text = server_load.explain_disruptions(killed, restart)
    assert f"{killed.result.failures} of {killed.result.requests} requests failed" in text
    assert f"{restart.result.failures} of {restart.result.requests}" in text


def test_explanations_quote_the_numbers():
    rows = [{"server": "PreforkServer", "workers": w, "route": "cpu", "throughput_per_s": t,
             "p50_ms": 20.0, "p95_ms": 22.0, "p99_ms": 25.0, "load_cpu_seconds": 0.1,
             "wall_seconds": 2.0} for w, t in ((1, 95.0), (2, 190.0), (4, 188.0))]
    text = server_load.explain_throughput(rows, ms=10, usable=2)
    assert "190 requests/s (95% of the 200/s" in text and "Past 2 workers" in text
    memory = [{"config": c, "moment": m, "uss_mib": u}
              for c, m, u in (("no --preload", "after start", 90.0),
                              ("--preload", "after start", 4.0),
                              ("--preload", "after a full GC", 64.0),
                              ("--preload + gc.freeze()", "after a full GC", 4.0))]
    text = server_load.explain_memory(memory)
    assert "90 MiB" in text and "64 MiB" in text and "4 MiB after the same collection" in text
    assert "reference count" not in text  # no reading measured, nothing said about it
    memory.append({"config": "--preload + gc.freeze()", "uss_mib": 41.0,
                   "moment": "after GC, then reading every row"})
    text = server_load.explain_memory(memory)
    assert "read every row once (a route that looks things up): 41 MiB" in text
