"""SMT, hybrid cores, the clock, steal and throttling, read from fake /sys and /proc trees
(and once from this machine, which may not show them all)."""

import os

import pytest

from helpers.core import hardware, machine


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cpu_lists_in_the_kernels_format():
    assert hardware.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert hardware.parse_cpu_list("5") == {5}


def smt_tree(root, pairs):
    for group in pairs:
        text = ",".join(str(c) for c in group)
        for cpu in group:
            write(root, f"sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list", text)


def test_two_hyper_threads_per_core_and_usable_siblings(tmp_path):
    smt_tree(tmp_path, [(0, 2), (1, 3)])
    shared = hardware.topology(tmp_path, usable={0, 2})
    assert (shared.physical_cores, shared.threads_per_core, shared.source) == (2, 2, "sysfs")
    assert shared.usable_share_cores is True
    assert hardware.topology(tmp_path, usable={0, 1}).usable_share_cores is False


def test_one_thread_per_core(tmp_path):
    smt_tree(tmp_path, [(0,), (1,)])
    plain = hardware.topology(tmp_path, usable={0, 1})
    assert plain.threads_per_core == 1 and plain.usable_share_cores is False


def test_hybrid_cores_where_linux_names_them(tmp_path):
    assert hardware.hybrid_cores(tmp_path) is None
    write(tmp_path, "sys/devices/cpu_core/cpus", "0-7\n")
    write(tmp_path, "sys/devices/cpu_atom/cpus", "8-15\n")
    assert hardware.hybrid_cores(tmp_path) == {"performance": 8, "efficiency": 8}


def test_the_clock_from_cpufreq_or_cpuinfo(tmp_path):
    for cpu, khz in ((0, 3_000_000), (1, 2_000_000)):
        base = f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        write(tmp_path, f"{base}/scaling_cur_freq", str(khz))
        write(tmp_path, f"{base}/cpuinfo_max_freq", "4000000")
        write(tmp_path, f"{base}/cpuinfo_min_freq", "800000")
    assert hardware.clock(tmp_path) == hardware.Clock(2500.0, 800.0, 4000.0)
    other = tmp_path / "vm"
    write(other, "proc/cpuinfo", "processor : 0\ncpu MHz : 2596.1\nprocessor : 1\n"
                                 "cpu MHz : 2596.1\n")
    assert hardware.clock(other) == hardware.Clock(2596.1, None, None)
    assert hardware.clock(tmp_path / "nothing") == hardware.Clock(None, None, None)


def test_steal_and_busy_time_from_proc_stat(tmp_path):
    hz = os.sysconf("SC_CLK_TCK")
    write(tmp_path, "proc/stat", f"cpu  {hz * 10} 0 {hz * 2} {hz * 30} {hz} 0 0 {hz * 3} 0 0\n"
                                 "cpu0 1 2 3 4\n")
    times = hardware.cpu_times(tmp_path)
    assert (times.busy, times.idle, times.steal) == (12.0, 31.0, 3.0)
    assert hardware.cpu_times(tmp_path / "nothing") is None


@pytest.mark.parametrize(("version", "lines", "expected"), [
    ("v2", "nr_periods 100\nnr_throttled 7\nthrottled_usec 250000\n", (100, 7, 0.25)),
    ("v1", "nr_periods 50\nnr_throttled 5\nthrottled_time 2000000000\n", (50, 5, 2.0)),
])
def test_cgroup_throttling_counters(tmp_path, version, lines, expected):
    if version == "v2":
        write(tmp_path, "proc/self/cgroup", "0::/box\n")
        write(tmp_path, "sys/fs/cgroup/box/cpu.stat", lines)
    else:
        write(tmp_path, "proc/self/cgroup", "4:cpu,cpuacct:/box\n")
        write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/box/cpu.stat", lines)
    found = hardware.throttling(tmp_path)
    assert (found.periods, found.throttled_periods, found.throttled_seconds) == expected


def test_the_monitor_records_what_it_can_on_this_machine():
    with hardware.ConditionsMonitor(interval=0.02) as monitor:
        sum(i * i for i in range(300_000))
    conditions = monitor.conditions
    assert conditions.wall_seconds > 0
    assert conditions.as_dict() == hardware.Conditions.from_dict(conditions.as_dict()).as_dict()
    if hardware.cpu_times() is not None:  # Linux
        assert 0 <= conditions.steal_share <= 1 and conditions.others_cpus >= 0
    assert not [t for t in __import__("threading").enumerate() if t.name == "conditions-monitor"]


def test_a_clock_drop_is_how_far_the_slowest_sample_fell():
    assert hardware.Conditions(1.0, clock_mhz=[4000.0, 3000.0]).clock_drop == 0.25
    assert hardware.Conditions(1.0, clock_mhz=[3000.0]).clock_drop is None


def test_the_card_shows_smt_and_the_clock(tmp_path):
    smt_tree(tmp_path, [(0, 1)])
    card = machine.machine_card(tmp_path)
    labels = dict(card.rows())
    assert labels["logical CPUs per physical core (SMT)"] == "2"
    assert labels["clock now / maximum"] == "unknown" or "MHz" in labels["clock now / maximum"]


# --- what a CPU is, in words (notebook 00) ---


def card_with(**fields):
    import types

    base = {"threads_per_core": 1, "usable_share_cores": False, "virtualisation": None,
            "hybrid_cores": None, "clock_mhz": 3000.0, "clock_max_mhz": 4500.0}
    return types.SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "every usable CPU is a whole core"),
    ({"threads_per_core": 2, "usable_share_cores": True}, "some of the CPUs this kernel"),
    ({"virtualisation": "KVM"}, "a VM cannot always see"),
    ({"threads_per_core": None}, "does not say how its logical CPUs map"),
    ({"hybrid_cores": {"performance": 6, "efficiency": 8}}, "6 performance and 8 efficiency"),
    ({"clock_max_mhz": None}, "does not say its maximum"),
    ({"clock_mhz": None}, "does not say how fast the clock runs"),
])
def test_what_a_cpu_is_follows_the_card(fields, expected):
    from helpers.view import explain_machine

    assert expected in explain_machine.what_a_cpu_is(card_with(**fields))
