"""Notebooks 08 and 08b's explanations: Markdown written from the run's own records.

::

    experiment (helpers.experiments.*) ──records──> explain_*(records) ──> Markdown cell

Each ``explain_*`` takes what an experiment returned, as the notebook holds it
(plain dicts, lists and :class:`~helpers.core.measure.Spread` values), and returns
Markdown that quotes the learner's numbers and says only what those numbers show.
A sentence that depends on the kernel branches on what the records hold: the GIL
state and start method each experiment recorded, the Python version the CPU counts
came from. An instructor edits the prose here, in one place; the tests run every
branch with made-up records (``tests/test_explain_production.py``).

Parent side only: no experiment runs here, and every number about a reference machine
comes from ``data/reference`` through :func:`helpers.view.compare.reference_speedups`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from helpers.core.measure import Spread
from helpers.experiments import advisor, production_patterns

#: Two timings closer than this (as a ratio) are "about the same" in the prose.
SAME = 0.10
#: Kubernetes' default grace period between SIGTERM and SIGKILL (terminationGracePeriodSeconds).
KUBERNETES_GRACE_SECONDS = 30


def _compare(ratio: float) -> str:
    """``ratio`` = new / old time, as a key: ``"same"`` (within :data:`SAME`), ``"longer"``
    or ``"shorter"``."""
    if abs(ratio - 1) <= SAME:
        return "same"
    return "longer" if ratio > 1 else "shorter"


def _times(value: float) -> str:
    """A speedup as a learner reads it: 0.84×, 3.1×, 12×."""
    return f"{value:.2f}×" if value < 1 else f"{value:.1f}×" if value < 10 else f"{value:.0f}×"


# --- 08b §1. serial first ---


def explain_serial_first(rows: Sequence[Mapping[str, Any]],
                         speedups: Mapping[str, Spread]) -> str:
    """What the three-ways bar chart shows (``serial_first.compare`` rows, their speedups)."""
    parallel = next(w for w in speedups if w.startswith("pure Python") and "processes" in w)
    processes, numpy = speedups[parallel].median, speedups["NumPy, 1 process"].median
    workers = rows[0].get("workers", "several")
    lines = [f"Processes gave **{_times(processes)}** on {workers} CPU(s); NumPy on one CPU "
             f"gave **{_times(numpy)}**."]
    if all(r["same_labels"] for r in rows):
        lines.append("All three ways gave identical labels.")
    else:
        lines.append("**The labels differ between the ways**: a bug to fix before any speedup "
                     "counts.")
    if workers == 1:
        lines.append("With one usable CPU, a worker process can only add the cost of feeding "
                     "it (pickling every point and label).")
    elif processes < 1 + SAME:
        lines.append("The processes were no faster than one process here: feeding them "
                     "(pickling every point and label) ate what the extra CPUs gained, or "
                     "other programs kept those CPUs busy.")
    if numpy > processes:
        lines.append("Vectorising beat every process here.")
    else:
        lines.append(f"Here the {workers} processes beat NumPy on one CPU; the two stack, so "
                     "vectorised code on several processes could beat both.")
    lines.append("Processes can at best divide the time by the CPUs you pay for (and they also "
                 "pickle every point to a worker and every label back); vectorising removes the "
                 "interpreter from the inner loop, and stacks with parallelism later. Profile "
                 "and vectorise first: it is the first branch of the decision guide in "
                 "section 2.")
    return " ".join(lines)


# --- 08 §1. sizing ---


def explain_cpu_counts(record: Mapping[str, Any]) -> str:
    """What this kernel's Python reports as its CPU count, and what its pools start by default.

    ``record`` is ``sizing.cpu_count_record()``; every version-dependent sentence is
    written for the Python it names.
    """
    major, minor = record["python"]
    version = f"Python {major}.{minor}"
    new = (major, minor) >= (3, 13)
    default, usable = record["default_workers"], record["usable"]
    lines = [_process_cpu_count_line(record, version) if new else
             f"- Your kernel, {version}, has no `os.process_cpu_count()` (it arrived in 3.13), "
             "and `ProcessPoolExecutor()` without `max_workers` starts `os.cpu_count()` "
             f"workers: **{default}** here, whatever the affinity allows. From 3.13 the "
             "default is `os.process_cpu_count()`, which counts the affinity mask but still "
             "not a quota."]
    if default > usable:
        lines.append(f"- That default is **{default} workers for {usable} usable CPU(s)**: "
                     "oversubscribed. The experiment below shows what that costs.")
    else:
        lines.append(f"- That default does not exceed the {usable} usable CPU(s) here.")
    if record.get("platform") == "win32":
        lines.append("- On Windows the default is capped at 61 workers.")
    lines.append(_quota_line(record["quota"]))
    lines.append(_override_line(record.get("override"), new, version))
    return "\n".join(lines)


def _process_cpu_count_line(record: Mapping[str, Any], version: str) -> str:
    """Python 3.13+: what os.process_cpu_count() counted here, and the pool default."""
    counted, machine_count = record["process_cpu_count"], record["cpu_count"]
    if record.get("override"):
        what = ("set by the override below; without one it counts the CPUs in this process's "
                "affinity mask")
    elif counted == machine_count:
        what = ("the CPUs in this process's affinity mask, the same as `os.cpu_count()`: "
                "nothing narrows the affinity here")
    else:
        what = (f"the CPUs in this process's affinity mask, fewer than the {machine_count} of "
                "`os.cpu_count()`")
    return (f"- Your kernel, {version}, has **`os.process_cpu_count()` = {counted}** (new in "
            f"3.13): {what}. It does not read a cgroup quota. Since 3.13 "
            "`ProcessPoolExecutor()` without `max_workers` starts that many workers: "
            f"**{record['default_workers']}** here.")


def _quota_line(quota: float | None) -> str:
    """Whether a cgroup quota limits this kernel, and who sees it."""
    if quota is not None:
        return (f"- This kernel runs under a cgroup quota of **{quota:g} CPUs**. Neither "
                "`os.cpu_count()` nor `os.process_cpu_count()` sees it; "
                "`helpers.core.machine.usable_cpus()` and `joblib.cpu_count()` do.")
    return ("- No cgroup quota limits this kernel. In a container that has one "
            "(`docker run --cpus=2`, a Kubernetes CPU limit) neither `os.cpu_count()` nor "
            "`os.process_cpu_count()` sees it: pass `max_workers` yourself.")


def _override_line(override: str | None, new: bool, version: str) -> str:
    """``PYTHON_CPU_COUNT`` / ``-X cpu_count``: in force, available, or not yet."""
    if not new:
        return ("- `PYTHON_CPU_COUNT=N` in the environment, or `python -X cpu_count=N`, makes "
                "both counts (and with them the pools' defaults) report N, which is how a "
                "container tells code it cannot change about its quota. Both arrived in 3.13: "
                f"on {version} they are ignored.")
    if override:
        return (f"- This kernel started with `{override}`: both counts above report that "
                "override, not what the hardware or the affinity says, and so does "
                "`ProcessPoolExecutor()`'s default.")
    return ("- To tell code you cannot change about a container's quota, start Python with "
            "`PYTHON_CPU_COUNT=2` in the environment or as `python -X cpu_count=2`: both counts, "
            "and with them `ProcessPoolExecutor()`'s default, then report 2.")


def explain_smaller_machine(smaller: Mapping[str, Any] | None) -> str:
    """What the one-CPU "smaller machine" measured (``sizing.smaller_machine()``, or None)."""
    if smaller is None:
        return ("No measurement on this platform (it has no `os.sched_setaffinity`). On Linux "
                "the rows show what oversubscribing one CPU costs.")
    rows = smaller["rows"]
    if len(rows) < 2:
        return "The smaller machine reported what it sees, but timed fewer than two worker counts."
    one, worst = rows[0], rows[-1]
    usable, ratio = smaller["usable"], worst["seconds"] / one["seconds"]
    verdict = {"same": "about as long, because the CPU time the job needs is the same",
               "longer": f"{ratio - 1:.0%} longer in this run: switching between workers is "
                         "not free, though a short job on a busy machine also varies that much",
               "shorter": "less, because more workers can win a larger share of a CPU that "
                          "another program is also using; they add no CPU time"}[_compare(ratio)]
    lines = [f"With {worst['workers']} workers on {usable} usable CPU(s) the job took "
             f"{worst['seconds']:.2f} s against {one['seconds']:.2f} s with one worker: "
             f"{verdict}."]
    if worst["task_wall_ms"] > 1.5 * one["task_wall_ms"]:
        lines.append(f"But each task now took {worst['task_wall_ms']:.0f} ms from start to "
                     f"finish, against {one['task_wall_ms']:.0f} ms with one worker, since the "
                     "workers take turns.")
    else:
        lines.append(f"Each task took {worst['task_wall_ms']:.0f} ms from start to finish, "
                     f"against {one['task_wall_ms']:.0f} ms with one worker: the workers seldom "
                     "overlapped in this short run.")
    cost = ("latency and memory, and here some throughput too" if _compare(ratio) == "longer"
            else "mostly latency and memory, not throughput")
    lines.append(f"For pure-Python tasks like these, which start no threads of their own, that "
                 f"is the cost of sizing by `os.cpu_count()`: {cost}, since every extra worker "
                 "also holds its own interpreter and data. With BLAS or OpenMP threads inside "
                 "each worker (NumPy, SciPy, scikit-learn) oversubscription multiplies, and can "
                 "cost throughput several-fold: see notebook 04's heatmap. Under a cgroup quota "
                 "many workers can spend the quota early in each period, and then the whole "
                 "container is throttled until the next one.")
    return " ".join(lines)


# --- 08 §2. recycling ---


def explain_recycling(runs: Mapping[str, Sequence[Mapping[str, Any]]], leak_per_task: float,
                      start_seconds: float) -> str:
    """What the recycling plot shows (``production_patterns.recycling`` runs by label)."""
    plain = next(rows for rows in runs.values() if rows[0]["max_tasks_per_child"] is None)
    recycled = [rows for rows in runs.values() if rows[0]["max_tasks_per_child"] is not None]
    growth = production_patterns.peak_growth_mib(plain)
    method = plain[0].get("start_method")
    lines = [f"Each task added about **{leak_per_task:.1f} MiB** to its worker's resident memory."]
    if leak_per_task < 0.5:
        why = (" Under fork a worker starts as a copy of the kernel, its heap pages already "
               "resident, and the leaked objects can reuse them." if method == "fork" else "")
        lines.append(f"That is less than the tasks leak: the leak hardly shows in RSS here.{why} "
                     "It is still there, and recycling still bounds it.")
    else:
        lines.append(f"Without recycling a worker grew by **{growth:.0f} MiB** and would keep "
                     "growing until the container's memory limit has it killed (the OOM killer "
                     "does not wait for a task to finish).")
    for rows in recycled:
        lines.append(_recycled_line(rows, growth, start_seconds))
    return " ".join(lines)


def _recycled_line(rows: Sequence[Mapping[str, Any]], plain_growth: float,
                   start_seconds: float) -> str:
    """One recycled run: how far its workers grew, and what recycling cost."""
    every = rows[0]["max_tasks_per_child"]
    growth = production_patterns.peak_growth_mib(rows)
    workers = len({r["pid"] for r in rows})
    method = rows[0].get("start_method") or "the default start method"
    text = (f"With `max_tasks_per_child={every}` no worker grew by more than **{growth:.0f} "
            f"MiB**: {workers} worker processes ran the {len(rows)} tasks, each replaced after "
            f"{every}, at the price of starting a process ({method}) every {every} tasks (a new "
            f"pool's first result took {start_seconds * 1e3:.0f} ms here).")
    if growth >= plain_growth:
        text += " Recycling did not cap the growth in this run: look at the plot's lines."
    return text


# --- 08 §3. timeouts ---


def explain_timeouts(thread_row: Mapping[str, Any], pool_row: Mapping[str, Any]) -> str:
    """What a timeout stopped: on a thread (nothing) and on a WorkerPool (the worker)."""
    return " ".join([_thread_timeout(thread_row), _pool_timeout(pool_row),
                     "A worker process can be killed without harming the parent because it has "
                     "its own memory: nothing of the parent's is left half-updated (unless the "
                     "two share memory or a lock). That is the reason to run untrusted or "
                     "unbounded CPU work in processes, with a timeout."])


def _thread_timeout(row: Mapping[str, Any]) -> str:
    """The thread's half: the caller gave up, the work did not stop."""
    if row["raised"] is None:
        return (f"The thread's task finished within the caller's timeout "
                f"({row['stuck_ended_after_s']:.2f} s), so this run had nothing to stop.")
    if row["cancel_worked"]:
        return ("`cancel()` worked on the thread's task: it had not started yet. Once a task "
                "runs on a thread, nothing can stop it from outside.")
    gil = ("While it spins it also takes turns on the GIL with every other Python thread in "
           "this process, the kernel's own included." if row.get("gil_enabled", True) else
           "On this free-threaded kernel it does not slow the other threads down, but it keeps "
           "a CPU busy for nothing.")
    return (f"The thread's caller gave up after {row['gave_up_after_s']:.2f} s "
            f"({row['raised']}), but `cancel()` returned False and the loop ran to its end "
            f"({row['stuck_ended_after_s']:.2f} s): Python has no way to stop a running thread "
            f"from outside, so the thread, and any task queued behind it, stays busy. {gil}")


def _pool_timeout(row: Mapping[str, Any]) -> str:
    """The WorkerPool's half: the worker was killed and replaced."""
    if row["raised"] != "TaskTimeout":
        return (f"The WorkerPool's task was not timed out in this run (it raised "
                f"{row['raised']}), so there is no kill to show: run the cell again.")
    method = row.get("start_method") or "the default start method"
    replaced = (f"started a replacement ({method}) and ran the next task by "
                f"{row['next_task_after_s']:.2f} s" if row["worker_replaced"] else
                f"ran the next task by {row['next_task_after_s']:.2f} s (the worker list "
                "showed no new process when it was read)")
    return (f"The WorkerPool killed the worker at {row['stuck_ended_after_s']:.2f} s, failed "
            f"that task with `TaskTimeout`, {replaced}.")


# --- 08 §4. backpressure ---


def explain_backpressure(unbounded: Mapping[str, Any], bounded: Mapping[str, Any]) -> str:
    """What the two backpressure runs show: queue depth, parent memory, and the job's time."""
    limit = bounded.get("limit") or 2 * bounded["workers"]
    lines = [f"Unbounded, the producer was done after {unbounded['producer_done_after']:.2f} s "
             f"with up to **{unbounded['peak_unfinished']} tasks** unfinished and "
             f"**{unbounded['peak_extra_mib']:.0f} MiB** more held by the parent. Bounded by a "
             f"semaphore of {limit}, at most {bounded['peak_unfinished']} tasks were unfinished "
             f"and the parent held {bounded['peak_extra_mib']:.0f} MiB more than at the start."]
    if bounded["peak_unfinished"] >= unbounded["peak_unfinished"]:
        lines.append(f"The bound never came into play: even unbounded, no more than "
                     f"{unbounded['peak_unfinished']} tasks were ever unfinished, so a "
                     f"semaphore of {limit} had nothing to hold back. Give the producer more "
                     "tasks, or a smaller bound, to see it work.")
        return " ".join(lines)
    if bounded["peak_extra_mib"] >= unbounded["peak_extra_mib"]:
        lines.append("The parent's memory did not show the difference this time (a process "
                     "reuses heap it already holds), but the queue depth did.")
    ratio = bounded["seconds"] / unbounded["seconds"]
    pace = {"same": "about the same: the workers set the pace either way, so bounding costs "
                    "nothing but the producer's waiting",
            "longer": f"bounding cost {ratio - 1:.0%} in this one run of each. A short job on a "
                      "busy machine can vary that much; if it persists, a worker is waiting for "
                      f"the producer with only {limit} tasks in flight, and a larger bound "
                      "hides that",
            "shorter": "bounded even finished sooner, so bounding cost nothing here"
            }[_compare(ratio)]
    lines.append(f"The whole job took {unbounded['seconds']:.2f} s unbounded and "
                 f"{bounded['seconds']:.2f} s bounded: {pace}.")
    samples = unbounded.get("samples") or []
    tail = samples[-1]["rss_mib"] - unbounded["baseline_rss_mib"] if samples else 0.0
    if unbounded["peak_extra_mib"] > 0 and tail > 0.5 * unbounded["peak_extra_mib"]:
        lines.append("(The unbounded line stays high after the queue drains: the allocator "
                     "keeps freed memory for reuse. The peak is what the OOM killer sees.)")
    else:
        lines.append("(The peak is what the OOM killer sees.)")
    return " ".join(lines)


# --- 08 §5. graceful shutdown ---


def explain_shutdown(shutdown: Mapping[str, Any] | None) -> str:
    """What counting the job runner's work after SIGTERM showed (``run_and_interrupt``)."""
    if shutdown is None:
        return "No run on this platform: Windows cannot catch SIGTERM."
    in_flight, signal = shutdown["in flight at SIGTERM"], shutdown["stopped by"]
    finished = (f"the {in_flight} in flight at {signal} included"
                if shutdown.get("in-flight jobs finished", True) else
                f"not all of the {in_flight} in flight at {signal}")
    lines = [f"{shutdown['completed']} jobs were done ({finished}) and "
             f"{shutdown['not started (reported back)']} were reported back unstarted."]
    if shutdown["every job accounted for"] and shutdown["each done job ran exactly once"]:
        lines.append("Every job is accounted for, and each done job ran exactly once.")
    else:
        if not shutdown["every job accounted for"]:
            lines.append("**Not every job is accounted for**: some were neither done nor "
                         "reported back.")
        if not shutdown["each done job ran exactly once"]:
            twice = ", ".join(str(j) for j in shutdown.get("jobs that ran twice", []))
            lines.append(f"**Some jobs ran more than once** ({twice or 'see the table'}).")
    seconds = shutdown["seconds_from_sigterm_to_exit"]
    grace = (f"well inside Kubernetes' default {KUBERNETES_GRACE_SECONDS} s grace period"
             if seconds < KUBERNETES_GRACE_SECONDS else
             f"past Kubernetes' default {KUBERNETES_GRACE_SECONDS} s grace period, so a real "
             "orchestrator would have killed it first")
    lines.append(f"The runner exited {seconds:.2f} s after the signal with code "
                 f"{shutdown['exit_code']}, {grace}.")
    lines.append("Without the handler, SIGTERM kills a process at once: the jobs in flight are "
                 "cut off half-done, and a queue that redelivers them runs them twice. Jobs with "
                 "side effects should also be idempotent, because a SIGKILL after the grace "
                 "period, or a power cut, still cuts work off.")
    return " ".join(lines)


# --- 08 §6. observability ---


def explain_observed(observed: Mapping[str, Any]) -> str:
    """The operator's numbers from one trace (``production_patterns.summarise``), and a table."""
    from helpers.view import tables

    wait, run = observed["queue_wait_ms"], observed["run_ms"]
    lines = [f"{observed['tasks']} tasks in {observed['wall_seconds']:.2f} s. Queue wait p50 "
             f"{wait['p50']:.0f} ms, p95 {wait['p95']:.0f} ms, max {wait['max']:.0f} ms; run "
             f"time p50 {run['p50']:.1f} ms, p95 {run['p95']:.0f} ms. All tasks were submitted "
             "at once, so waiting is expected here; in a service, a queue wait that grows while "
             "run times stay flat means too few workers, and run times that grow mean slower "
             "work."]
    busy = [w["busy_seconds"] for w in observed["workers"]]
    if len(busy) > 1 and min(busy) > 0:
        balance = ("about the same work" if max(busy) <= 1.25 * min(busy)
                   else "uneven amounts of work")
        lines.append(f"The {len(busy)} workers did {balance} ({min(busy):.2f}–{max(busy):.2f} s "
                     "busy each):")
    return " ".join(lines) + "\n\n" + tables.markdown_table(observed["workers"])


# --- 08b §2–3. the decision guide and the money side ---


def explain_advice(rows: Sequence[Mapping[str, Any]]) -> str:
    """How often the cost model's advice matched the measurement (``check_advice`` rows)."""
    agreed = [r for r in rows if r["advice_within_15pc"]]
    noisy = [r["case"] for r in rows if r["spread"] > 0.3]
    lines = [f"The advice was within 15 % of the fastest measured way in **{len(agreed)} of "
             f"{len(rows)}** cases."]
    missed = [r for r in rows if not r["advice_within_15pc"]]
    if missed:
        lines.append("It missed in: " + "; ".join(
            f"{r['case']} (advised {r['advice']}, fastest {r['fastest']})" for r in missed) + ".")
    if noisy:
        lines.append(f"Repeats varied by more than 30 % in: {', '.join(noisy)}; treat those rows "
                     "with care.")
    else:
        lines.append("The repeats agreed within 30 %.")
    if any(not r.get("gil_enabled", True) for r in rows):
        lines.append("This kernel ran with the GIL off, so the model let threads run every job, "
                     "pure Python included, in parallel.")
    lines.append("Where model and measurement disagree, trust the measurement, and look at "
                 "which cost the model got wrong; the predicted and measured speedups are side "
                 "by side.")
    return " ".join(lines)


def explain_money(model: advisor.CostModel, measured: Mapping[str, Mapping[int, Spread]],
                  tasks: int = 10_000, card: Any = None) -> str:
    """What the money plot shows: the model's speedups, what each reference core did, and
    (given this kernel's machine card) what a cloud vCPU is."""
    at = {ms: [advisor.speedup_for_cores(ms / 1000, cores, tasks, model) for cores in (16, 64)]
          for ms in (0.1, 1, 30)}
    lines = ["The model's speedup on 16 and 64 cores: "
             + ", ".join(f"{ms:g} ms tasks {_times(a)} and {_times(b)}"
                         for ms, (a, b) in at.items()) + "."]
    work = tasks * 0.1e-3
    start = model.start_seconds
    finish = work / 64
    versus = (f"less than the {start * 1e3:.0f} ms it takes to start a pool here" if start > finish
              else f"while starting a pool takes {start * 1e3:.0f} ms here, "
                   f"{start / finish:.0%} of that")
    lines.append("Costs that do not shrink with more cores (starting the pool, handing out "
                 "chunks one after another, the last chunk finishing alone) decide how far a "
                 f"job scales: {tasks:,} tasks of 0.1 ms are only {work:g} s of work, which 64 "
                 f"cores would finish in {finish * 1e3:.0f} ms, {versus}.")
    lines += _reference_lines(measured)
    lines.append(_vcpu_sentence(card))
    lines.append("Buy cores while the measured share per core is worth its price; past that, "
                 "make jobs bigger, vectorise, or accept the latency.")
    return " ".join(line for line in lines if line)


def _vcpu_sentence(card: Any) -> str:
    """A cloud vCPU is usually one hyper-thread: what this kernel's card shows of that."""
    text = ("Mind what a cloud price counts: on most instance types a *vCPU* is one "
            "hyper-thread, half of a physical core, so two vCPUs of pure-Python workers do not "
            "give two cores' worth.")
    if card is None:
        return text
    per_core = getattr(card, "threads_per_core", None)
    vm = getattr(card, "virtualisation", None)
    if per_core and per_core > 1:
        return text + (f" This machine shows {per_core} logical CPUs per physical core: "
                       "count cores, not CPUs, for CPU-bound pools.")
    if vm:
        return text + (" This kernel runs in a virtual machine whose OS shows one thread per "
                       "core, which a VM cannot be trusted to show: the 1-versus-2-worker "
                       "scaling of a coarse job (notebook 10's diagnosis) is the evidence.")
    return text



def _reference_lines(measured: Mapping[str, Mapping[int, Spread]]) -> list[str]:
    """One sentence per reference machine that measured 16 workers (``measured``:
    ``compare.reference_speedups``, computed from ``data/reference``)."""
    sixteen = {name: points[16] for name, points in measured.items() if 16 in points}
    if not sixteen:
        return ["No reference machine in `data/reference/` measured 16 workers, so the plot "
                "shows the model beside what they did measure."]
    lines = []
    for name, point in sixteen.items():
        lines.append(f"The reference machine {name.removeprefix('reference: ')} measured "
                     f"{_times(point.median)} on 16 workers, so each paid core did "
                     f"{point.median / 16:.0%} of a core's work.")
    return lines


__all__ = ["explain_serial_first", "explain_cpu_counts", "explain_smaller_machine",
           "explain_recycling", "explain_timeouts", "explain_backpressure", "explain_shutdown",
           "explain_observed", "explain_advice", "explain_money"]
