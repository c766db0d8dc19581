"""What a "CPU" is on this kernel, in sentences generated from its machine card (notebook 00).

The card counts logical CPUs; a learner needs to know whether those are whole cores or
hyper-threads, whether a virtual machine can even tell, and that the clock can change
under load. Each sentence below branches on what the card read, and says "unknown" where
the OS did not say.
"""

from __future__ import annotations

from typing import Any


def what_a_cpu_is(card: Any) -> str:
    """Logical CPUs, cores, vCPUs and the clock, for this machine (Markdown)."""
    return "\n\n".join(part for part in (_cores(card), _hybrid(card), _clock(card)) if part)


def _cores(card: Any) -> str:
    text = ("The card counts **logical CPUs**, what the OS schedules on. With SMT "
            "(\"hyper-threading\") one physical core runs two hardware threads and shows as two "
            "logical CPUs; they share that core's execution units, so for pure-Python work the "
            "second one adds much less than a whole core.")
    per_core, vm = card.threads_per_core, card.virtualisation
    if per_core is None:
        return text + " This OS does not say how its logical CPUs map to cores."
    if per_core > 1:
        shared = (" and some of the CPUs this kernel may use are siblings of one core"
                  if card.usable_share_cores else "")
        return text + (f" **Here:** {per_core} logical CPUs per physical core{shared}: size "
                       "CPU-bound pools by physical cores, and expect each extra sibling to "
                       "add a fraction of a core.")
    if vm:
        which = "its CPU flags say so" if vm.startswith("a ") else vm
        return text + (f" **Here** the OS shows one thread per core, but this is a virtual "
                       f"machine ({which}). A cloud *vCPU* is usually one hyper-thread of a host "
                       "core, and a VM cannot always see which of its vCPUs share one. If two "
                       "workers give much less than 2× on a coarse job (section 3), shared "
                       "host cores are a likely reason, beside steal time and other guests: "
                       "notebook 10's benchmark measures the last two, and its diagnosis "
                       "names all three when the numbers point at them.")
    return text + " **Here:** one thread per core, so every usable CPU is a whole core."


def _hybrid(card: Any) -> str:
    cores = card.hybrid_cores
    if not cores:
        return ""
    return (f"This is a hybrid CPU: {cores['performance']} performance and "
            f"{cores['efficiency']} efficiency cores. Equal tasks finish later on the "
            "efficiency cores, so the last ones hold up the job: give each worker many "
            "tasks.")


def _clock(card: Any) -> str:
    now, top = card.clock_mhz, card.clock_max_mhz
    if now is None:
        return "This OS does not say how fast the clock runs."
    text = f"The clock reads {now:.0f} MHz now"
    text += f", at most {top:.0f} MHz." if top else " (this OS does not say its maximum)."
    return text + (" Many CPUs run one busy core faster (boost) than all of them at once, so "
                   "N busy workers can get less than N times one worker's speed; notebook "
                   "10's benchmark samples the clock while it runs, to show whether it drops.")
