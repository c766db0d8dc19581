"""Notebook 07: six ways to move data, all correct; what the pools send; shared memory always
cleaned up, and what happens when a worker or an owner is killed; explanations that hold on
every kernel (fake runs cover their branches)."""

import contextlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.experiments import data_transfer, shm_ownership

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
START_METHODS = [m for m in ("fork", "forkserver", "spawn")
                 if m in multiprocessing.get_all_start_methods()]
needs_shm = pytest.mark.skipif(not Path("/dev/shm").is_dir(),
                               reason="no /dev/shm on this OS: segments cannot be listed")
posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and resource trackers")


def still_there(names) -> set[str]:
    """Those of ``names`` still in /dev/shm (other processes' segments do not count)."""
    return {n for n in names if shm_ownership.segment_exists(n)}


@pytest.fixture
def segments_made(monkeypatch):
    """The names of the segments data_transfer.owned_shared_memory makes during the test."""
    names = []
    make = data_transfer.owned_shared_memory

    @contextlib.contextmanager
    def recording(size):
        with make(size) as segment:
            names.append(segment.name)
            yield segment

    monkeypatch.setattr(data_transfer, "owned_shared_memory", recording)
    return names


# --- the measurements ---


@pytest.mark.parametrize("method", START_METHODS)
def test_every_method_delivers_every_byte_and_records_its_kernel(method, segments_made):
    rows = data_transfer.transfer_costs(sizes=[1024, 3 * MIB + 7], repeats=1,
                                        start_method=method)
    measured = [r for r in rows if "seconds" in r]
    assert {r["method"] for r in measured} == set(data_transfer.METHODS)
    assert all(r["correct"] for r in measured)
    assert {r["start_method"] for r in measured} == {method}
    assert {r["gil_enabled"] for r in measured} <= {True, False}
    assert len(segments_made) == 4, "per size: the segment already there, and one copy"
    assert still_there(segments_made) == set(), "every segment is unlinked"


def test_payloads_above_the_limits_are_skipped_with_a_reason(monkeypatch):
    monkeypatch.setattr(data_transfer, "size_limits",
                        lambda: {m: MIB for m in data_transfer.METHODS})
    rows = data_transfer.transfer_costs(sizes=[2 * MIB], repeats=1)
    assert len(rows) == len(data_transfer.METHODS)
    assert all("over this machine's limit of 1 MiB" in r["skipped"] for r in rows)


def test_only_the_methods_asked_for_make_a_segment(monkeypatch):
    def no_segment(size):
        pytest.fail("made a segment for methods that do not need one")

    monkeypatch.setattr(data_transfer, "owned_shared_memory", no_segment)
    rows = data_transfer.transfer_costs(sizes=[4096], methods=("pickle", data_transfer.THREAD),
                                        repeats=1)
    assert {r["method"] for r in rows} == {"pickle", data_transfer.THREAD}


def test_a_gil_off_kernel_is_recorded_and_explained(monkeypatch):
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    rows = data_transfer.transfer_costs(sizes=[MIB], repeats=1,
                                        methods=("pickle", data_transfer.THREAD))
    assert {r["gil_enabled"] for r in rows} == {False}
    assert "here it was off" in data_transfer.explain_transfer(rows)


def test_the_pools_pickle_arguments_in_band():
    rows = {r["sender"]: r for r in data_transfer.library_messages(MIB)}
    pools = rows["ProcessPoolExecutor, multiprocessing.Pool"]
    assert pools["message_bytes"] >= MIB and pools["out_of_band_bytes"] == 0
    assert pools["protocol"] == __import__("pickle").DEFAULT_PROTOCOL
    joblib = rows["joblib (loky backend)"]
    assert joblib["message_bytes"] >= MIB and joblib["memmaps_numpy_above"]
    ours = rows["this notebook's out-of-band row"]
    assert ours["message_bytes"] < 100 and ours["out_of_band_bytes"] == MIB
    text = data_transfer.explain_library_messages(list(rows.values()))
    assert text.count("in-band") == 2 and "sent raw beside it" in text


# --- shared memory: owners and deaths ---


def test_the_owner_unlinks_even_when_the_block_fails():
    with pytest.raises(RuntimeError), data_transfer.owned_shared_memory(4096) as segment:
        name = segment.name
        raise RuntimeError("something went wrong while the segment was in use")
    with pytest.raises(FileNotFoundError):
        data_transfer.shared_memory.SharedMemory(name=name)


@posix_only
@pytest.mark.parametrize("method", START_METHODS)
def test_who_dies_what_happens_to_the_segment(method):
    worker, child, program = shm_ownership.who_dies(method, size=64 * 1024)
    assert worker["exit_status"] == -9 and worker["gone_after_ms"] is not None
    assert child["exit_status"] == -9 and child["there_after_kill"] is True
    assert child["gone_after_ms"] is None, "the kernel's tracker keeps it while we live"
    assert child["removed_by"] == "this notebook, afterwards"
    assert program["exit_status"] == -9 and program["tracker"] == "its own"
    assert program["gone_after_ms"] is not None, "its own tracker unlinks it"
    assert program["reader_still_read"] is True and "leaked" in program["tracker_said"]
    assert still_there(r["segment"] for r in (worker, child, program)) == set()
    text = shm_ownership.explain_deaths([worker, child, program])
    assert method in text and "safety net for a *program*" in text


@posix_only
@pytest.mark.parametrize("method", START_METHODS)
def test_a_killed_childs_segment_goes_when_its_parent_program_exits(method, tmp_path):
    """What the explanation promises: the shared tracker unlinks it once the parent exits."""
    script = textwrap.dedent(f"""
        from helpers.experiments import shm_ownership
        from helpers.core import config
        from helpers.tasks.transfer import own_segment
        shm_ownership.start_resource_tracker()
        context = config.mp_context({method!r})
        conn, child = context.Pipe()
        process = context.Process(target=own_segment, args=(child, 4096))
        process.start()
        name, _ = conn.recv()
        process.kill()
        process.join()
        print(name, shm_ownership.segment_exists(name), flush=True)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    name, there_while_parent_lived = run.stdout.split()
    assert there_while_parent_lived == "True"
    gone = shm_ownership.seconds_until_gone(name, 5.0)
    if gone is None:
        shm_ownership.remove_leftover(name)
    assert gone is not None, "the parent's tracker did not unlink the segment"


@posix_only
def test_segment_exists_by_name_where_there_is_no_dev_shm(monkeypatch, tmp_path):
    monkeypatch.setattr(shm_ownership, "SHM_DIR", tmp_path / "no-such-folder")
    assert shm_ownership.shm_entries() is None
    with data_transfer.owned_shared_memory(4096) as segment:
        assert shm_ownership.segment_exists(segment.name) is True
    assert shm_ownership.segment_exists(segment.name) is False


def test_segment_exists_cannot_say_without_posix_shm(monkeypatch, tmp_path):
    monkeypatch.setattr(shm_ownership, "SHM_DIR", tmp_path / "no-such-folder")
    monkeypatch.setitem(sys.modules, "_posixshmem", None)  # as on Windows
    assert shm_ownership.segment_exists("psm_nothing") is None
    assert shm_ownership.seconds_until_gone("psm_nothing", 0.01) is None


# --- explanations, from fake runs ---


def row(method, size, ms, low=None, high=None, **extra):
    seconds = ms / 1000
    return {"method": method, "bytes": size, "seconds": seconds,
            "low": (low if low is not None else ms * 0.95) / 1000,
            "high": (high if high is not None else ms * 1.05) / 1000, "correct": True,
            "mib_per_s": size / MIB / seconds, "start_method": "spawn", "gil_enabled": True,
            **extra}


def fake_run(big=None, small=None, **extra):
    """A run at 1 KiB and 64 MiB; ``big``/``small`` override a method's milliseconds."""
    small_ms = {"pickle": 0.2, "pickle 5, out-of-band": 0.3, "shared memory": 0.2,
                "copy into shared memory": 0.35, "memory-mapped file": 0.2,
                data_transfer.THREAD: 0.05} | (small or {})
    big_ms = {"pickle": 400, "pickle 5, out-of-band": 200, "shared memory": 30,
              "copy into shared memory": 100, "memory-mapped file": 30,
              data_transfer.THREAD: 20} | (big or {})
    rows = []
    for size, table in ((1024, small_ms), (64 * MIB, big_ms)):
        for method, ms in table.items():
            value = ms if isinstance(ms, tuple) else (ms,)
            rows.append(row(method, size, *value, **extra))
    return rows


def test_explain_transfer_on_a_typical_run():
    text = data_transfer.explain_transfer(fake_run())
    assert "ms/MiB" in text and "× the thread" in text
    assert "every way to another process took between" in text
    assert "2.0× faster" in text and "this notebook's own transport" in text
    assert "3.3× the" in text and "producer writes its data there" in text
    assert "still beat pickling" in text
    assert "checksum matched" in text and "**spawn**" in text and "was on" in text


def test_explain_transfer_when_small_payloads_differ():
    text = data_transfer.explain_transfer(fake_run(small={"copy into shared memory": 2.0}))
    assert "ranged from" in text and "creates a segment and unlinks it" in text
    assert "noise" not in text
    noisy = data_transfer.explain_transfer(fake_run(small={"memory-mapped file": (2.0, 0.3, 3)}))
    assert "opens and maps the file" in noisy and "how much of that gap is noise" in noisy


def test_explain_transfer_when_out_of_band_is_no_faster_or_slower():
    overlap = data_transfer.explain_transfer(fake_run(big={"pickle 5, out-of-band": 380}))
    assert "cannot tell them apart" in overlap
    slower = data_transfer.explain_transfer(fake_run(big={"pickle 5, out-of-band": 600}))
    assert "*slower* than plain pickling" in slower


def test_explain_transfer_when_copying_in_is_hidden_or_dearer_than_pickling():
    hidden = data_transfer.explain_transfer(fake_run(big={"copy into shared memory": 31}))
    assert "the copy did not show" in hidden
    tie = data_transfer.explain_transfer(fake_run(big={"copy into shared memory": 390}))
    assert "no clear win" in tie
    dearer = data_transfer.explain_transfer(fake_run(big={"copy into shared memory": 700}))
    assert "even slower than pickling" in dearer


@pytest.mark.parametrize(("method", "words"), [
    ("fork", "copy-on-write"), ("forkserver", "server process started early"),
    ("spawn", "fresh interpreter")])
def test_explain_transfer_names_the_start_method(method, words):
    text = data_transfer.explain_transfer(fake_run(start_method=method))
    assert f"**{method}**" in text and words in text
    for other in {"fork", "forkserver", "spawn"} - {method}:
        assert f"**{other}**" not in text


def test_explain_transfer_on_a_gil_off_kernel_and_with_bad_checksums():
    rows = fake_run(gil_enabled=False)
    rows[0]["correct"] = False
    text = data_transfer.explain_transfer(rows)
    assert "was off" in text and "Checksums did not match for: pickle" in text


def test_explain_transfer_with_little_or_nothing_measured():
    assert "Nothing was measured" in data_transfer.explain_transfer(
        [{"method": "pickle", "bytes": MIB, "skipped": "too big"}])
    small_only = [r for r in fake_run() if r["bytes"] == 1024]
    assert "No payload of 1 MiB" in data_transfer.explain_transfer(small_only)
    one = [row("pickle", MIB, 5.0, start_method=None, gil_enabled=None)]
    text = data_transfer.explain_transfer(one)
    assert "out-of-band" not in text and "GIL" not in text and "thread" not in text


def test_explain_library_messages_branches():
    base = {"payload_bytes": MIB, "pickler": "p", "protocol": 5}
    rows = [{**base, "sender": "a", "message_bytes": MIB + 90, "out_of_band_bytes": 0},
            {**base, "sender": "b", "message_bytes": 100, "out_of_band_bytes": 0}]
    text = data_transfer.explain_library_messages(rows)
    assert "in-band" in text and "went another way" in text and "joblib is not installed" in text


def death(killed, gone, there=True, **extra):
    return {"killed": killed, "owner": "?", "tracker": "?", "exit_status": -9, "segment": "s",
            "there_after_kill": there, "gone_after_ms": gone, "removed_by": "x", **extra}


def typical_deaths(method="spawn"):
    return [death("the worker", 0.1, start_method=method),
            death("the owner (a multiprocessing child)", None, start_method=method,
                  watched_ms=1000),
            death("the owner (a separate program)", 40.0, reader_still_read=True,
                  tracker_said="resource_tracker: There appear to be 1 leaked ...")]


@pytest.mark.parametrize(("method", "words"), [
    ("fork", "already running when the child was forked"),
    ("forkserver", "under forkserver multiprocessing hands every child"),
    ("spawn", "under spawn multiprocessing hands every child")])
def test_explain_deaths_on_every_start_method(method, words):
    text = shm_ownership.explain_deaths(typical_deaths(method), platform="linux")
    assert words in text and "still there 1000 ms later" in text
    assert "40 ms after the kill" in text and "leaked" in text and "removes the *name*" in text
    assert "safety net for a *program*" in text


def test_explain_deaths_when_the_run_went_otherwise():
    records = [death("the worker", None),
               death("the owner (a multiprocessing child)", 3.0, start_method="fork"),
               death("the owner (a separate program)", None)]
    text = shm_ownership.explain_deaths(records, platform="linux")
    assert "This should not happen" in text and "gone 3 ms later" in text
    assert "no tracker removed it" in text and "safety net" not in text
    quiet = death("the owner (a separate program)", 12.0)
    assert "saying" not in shm_ownership.explain_deaths([quiet], platform="linux")


@pytest.mark.parametrize(("platform", "words"), [("win32", "Windows has no"),
                                                 ("darwin", "cannot list segments")])
def test_explanations_say_when_they_cannot_look(platform, words):
    blind = [death("the worker", None, there=None)]
    assert words in shm_ownership.explain_deaths(blind, platform=platform)
    assert words in shm_ownership.explain_leak_check(None, None, platform=platform)
    assert "nothing leaked" not in shm_ownership.explain_leak_check(None, {"x"}, platform)


def test_explain_leak_check_on_linux():
    assert "nothing leaked" in shm_ownership.explain_leak_check({"a"}, {"a"})
    assert "psm_1" in shm_ownership.explain_leak_check(set(), {"psm_1"})


# --- the notebook ---


@needs_shm
@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", ["07_moving_data.ipynb", "04_joblib.ipynb"])
def test_the_notebook_leaves_nothing_in_dev_shm(notebook, tmp_path):
    """Run the whole notebook in a kernel (quick mode); /dev/shm must be as it was."""
    before = set(os.listdir("/dev/shm"))
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=120", "--output-dir", str(tmp_path),
         str(ROOT / "notebooks" / notebook)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COURSE_QUICK": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    new = set(os.listdir("/dev/shm")) - before
    ours = {n for n in new if n.startswith(("psm_", "course-", "joblib_", "sem.loky"))}
    assert ours == set()
