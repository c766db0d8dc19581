"""The machine card, with fake cgroup trees for each layout the course meets."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core import machine

REPO = Path(__file__).resolve().parent.parent


def fake_tree(tmp_path: Path, cgroup_lines: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup_lines)
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_v2_quota(tmp_path):
    root = fake_tree(tmp_path, "0::/\n", {"sys/fs/cgroup/cpu.max": "150000 100000\n"})
    assert machine.cgroup_cpu_quota(root) == pytest.approx(1.5)


def test_v2_max_means_no_limit(tmp_path):
    root = fake_tree(tmp_path, "0::/\n", {"sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert machine.cgroup_cpu_quota(root) is None


def test_v2_missing_cpu_max_means_no_limit(tmp_path):
    root = fake_tree(tmp_path, "0::/\n", {"sys/fs/cgroup/cgroup.controllers": "memory\n"})
    assert machine.cgroup_cpu_quota(root) is None


def test_v2_limit_on_a_parent_group_applies(tmp_path):
    root = fake_tree(tmp_path, "0::/kubepods/pod1/box\n", {
        "sys/fs/cgroup/kubepods/cpu.max": "200000 100000",
        "sys/fs/cgroup/kubepods/pod1/cpu.max": "max 100000",
        "sys/fs/cgroup/kubepods/pod1/box/cpu.max": "400000 100000",
    })
    assert machine.cgroup_cpu_quota(root) == pytest.approx(2.0)


def test_v2_host_path_missing_inside_the_container(tmp_path):
    root = fake_tree(tmp_path, "0::/system.slice/docker-abc.scope\n",
                     {"sys/fs/cgroup/cpu.max": "50000 100000"})
    assert machine.cgroup_cpu_quota(root) == pytest.approx(0.5)


def test_v1_quota(tmp_path):
    root = fake_tree(tmp_path, "4:memory:/\n3:cpu,cpuacct:/docker/abc\n", {
        "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000",
        "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
    })
    assert machine.cgroup_cpu_quota(root) == pytest.approx(3.0)


def test_v1_minus_one_means_no_limit(tmp_path):
    root = fake_tree(tmp_path, "2:cpuacct:/\n1:cpu:/\n", {
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
    })
    assert machine.cgroup_cpu_quota(root) is None


def test_no_cgroup_files_at_all(tmp_path):
    assert machine.cgroup_cpu_quota(tmp_path) is None


def test_hybrid_layout_falls_back_to_v1(tmp_path):
    root = fake_tree(tmp_path, "1:cpu:/\n0::/\n", {
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
    })
    assert machine.cgroup_cpu_quota(root) == pytest.approx(1.0)


def test_fractional_quota_rounds_up_and_caps_usable_cpus(tmp_path):
    root = fake_tree(tmp_path, "0::/\n", {"sys/fs/cgroup/cpu.max": "150000 100000"})
    no_quota = machine.usable_cpus(tmp_path / "no-cgroups")  # count and affinity only
    expected = min(no_quota, math.ceil(1.5))
    assert machine.usable_cpus(root) == expected


def test_tiny_quota_still_gives_one_cpu(tmp_path):
    root = fake_tree(tmp_path, "0::/\n", {"sys/fs/cgroup/cpu.max": "10000 100000"})
    assert machine.usable_cpus(root) == 1


def test_usable_cpus_follows_affinity(tmp_path):
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("this OS has no scheduler affinity (macOS, Windows)")
    original = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(original)})
        assert machine.usable_cpus(tmp_path) == 1
    finally:
        os.sched_setaffinity(0, original)


def test_card_renders_as_a_table_and_as_text():
    card = machine.machine_card()
    html = card._repr_html_()
    assert html.startswith("<table>") and "usable CPUs" in html
    assert str(card.usable_cpus) in str(card)
    assert card.as_dict()["python"]
    assert card.gil_enabled in (True, False)
    assert len(card.machine_id) == 12
    assert card.writes_bytecode is (not sys.flags.dont_write_bytecode)


@pytest.mark.parametrize("flag", ["-B", None])
def test_the_card_says_whether_new_interpreters_write_bytecode_caches(flag):
    """A new interpreter (a spawned worker's) inherits -B and PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = ("from helpers.core import machine; "
            "print(dict(machine.machine_card().rows())['bytecode caches written (.pyc)'])")
    run = subprocess.run([sys.executable, *([flag] if flag else []), "-c", code], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    expected = "no (PYTHONDONTWRITEBYTECODE or python -B)" if flag else "yes"
    assert run.stdout.strip() == expected


# --- virtual machines and containers, from fake file trees ---


def test_virtualisation_from_dmi_and_the_hypervisor_flag(tmp_path):
    assert machine.virtualisation(tmp_path) is None
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text("processor : 0\nflags : fpu sse2 hypervisor\n")
    assert machine.virtualisation(tmp_path) == "a hypervisor (unnamed)"
    dmi = tmp_path / "sys" / "class" / "dmi" / "id"
    dmi.mkdir(parents=True)
    (dmi / "sys_vendor").write_text("QEMU\n")
    assert machine.virtualisation(tmp_path) == "QEMU"


def test_container_detection(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert machine.container(tmp_path) is None
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/kubepods/besteffort/pod1\n")
    assert machine.container(tmp_path) == "Kubernetes"
    (tmp_path / ".dockerenv").write_text("")
    assert machine.container(tmp_path) == "Docker"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert machine.container(tmp_path) == "Kubernetes"


def test_benchmark_metadata_names_the_libraries_and_the_build():
    metadata = machine.benchmark_metadata()
    assert metadata["libraries"]["joblib"] is not None
    assert machine.library_versions(("surely-not-installed-package",)) == {
        "surely-not-installed-package": None}
    assert metadata["python_build"] and metadata["start_methods"]
