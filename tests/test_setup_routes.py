"""Set-up routes other than make: the standard-library script (Windows), uv, conda's pip."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers.core.paths import REPO_ROOT
from helpers.tools import setup_course


def test_the_venv_python_is_scripts_python_exe_on_windows():
    venv = Path(".venv")
    assert setup_course.venv_python(venv, platform="win32") == venv / "Scripts" / "python.exe"
    assert setup_course.venv_python(venv, platform="linux") == venv / "bin" / "python"
    assert setup_course.venv_python(venv, platform="darwin") == venv / "bin" / "python"


def test_install_uses_the_constraints_and_registers_the_course_kernel():
    python = Path(".venv/Scripts/python.exe")
    commands = setup_course.install_commands(python, setup_course.LEARNER_EXTRAS)
    assert all(command[0] == str(python) for command in commands)
    pip = commands[1]
    assert pip[pip.index("-c") + 1] == "constraints.txt"
    assert pip[-1] == ".[lab,dask,server]"
    assert commands[2][-2:] == ["--display-name", setup_course.KERNEL_DISPLAY]
    assert setup_course.KERNEL in commands[2]


def test_a_learner_gets_no_test_tools_and_the_tests_get_them():
    extras = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
                 ["project"]["optional-dependencies"])
    assert set(setup_course.TEST_EXTRAS.split(",")) == extras
    assert set(setup_course.LEARNER_EXTRAS.split(",")) == extras - {"test"}


def test_jupyter_is_told_about_root_only_where_there_is_root():
    python = Path("py")
    assert "--allow-root" in setup_course.run_command("lab", python, running_as_root=True)
    assert "--allow-root" not in setup_course.run_command("lab", python, running_as_root=False)
    assert setup_course.run_command("test", python, running_as_root=False)[1:3] == [
        "-m", "pytest"]
    with pytest.raises(ValueError, match="setup, lab, test"):
        setup_course.run_command("serve", python, running_as_root=False)


def test_windows_has_no_root_to_ask_about(monkeypatch):
    monkeypatch.delattr(setup_course.os, "geteuid", raising=False)
    assert setup_course.is_root() is False


def test_uv_installs_the_whole_course_by_default():
    """``uv run jupyter lab`` from a fresh clone: the default group brings every extra."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    groups = project["tool"]["uv"]["default-groups"]
    wanted = {f"{project['project']['name']}[{setup_course.TEST_EXTRAS}]"}
    assert {r for g in groups for r in project["dependency-groups"][g]} == wanted


def _direct_requirements():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    every = project["dependencies"] + [r for extra in project["optional-dependencies"].values()
                                       for r in extra]
    return [r.split(";")[0].strip() for r in every]


#: (python version, ABI) of every supported Python, free-threaded 3.14 included. pip checks
#: each package's Requires-Python against the version, but evaluates the markers in
#: constraints.txt with the running Python: so 3.11 is this one, and the older 3.11 releases
#: are covered by the marker test below.
RUNNING_311 = f"3.11.{sys.version_info.micro}" if sys.version_info[:2] == (3, 11) else "3.11.5"
PYTHONS = [(RUNNING_311, "cp311"), ("3.12", "cp312"), ("3.13", "cp313"), ("3.14", "cp314"),
           ("3.14", "cp314t")]


@pytest.mark.slow
@pytest.mark.parametrize(("version", "abi"), PYTHONS)
def test_the_pinned_versions_have_wheels_for_every_supported_python(version, abi, tmp_path):
    """``constraints.txt`` resolves, wheels only, for each Python a learner may have (asks
    the package index, as make setup does; Linux x86_64 wheels)."""
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "linux_x86_64"]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
               "--ignore-installed", "--only-binary=:all:", "--target", str(tmp_path),
               "--python-version", version, "--implementation", "cp",
               "--abi", abi, "--abi", "abi3", "--abi", "none",
               *[flag for p in platforms for flag in ("--platform", p)],
               "-c", "constraints.txt", *_direct_requirements()]
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=240)
    assert run.returncode == 0, run.stderr[-1500:]


def test_older_python_311_releases_get_a_soupsieve_they_can_run():
    """soupsieve 4 requires Python 3.11.5: constraints.txt pins an older one before that."""
    from packaging.markers import Marker

    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("soupsieve=="):
            pin, _, marker = line.partition(";")
            pins[pin.strip()] = Marker(marker.strip())
    chosen = {version: [pin for pin, marker in pins.items()
                        if marker.evaluate({"python_full_version": version})]
              for version in ("3.11.0", "3.11.4", "3.11.5", "3.14.0")}
    assert chosen == {"3.11.0": ["soupsieve==2.10"], "3.11.4": ["soupsieve==2.10"],
                      "3.11.5": ["soupsieve==4.1.3"], "3.14.0": ["soupsieve==4.1.3"]}
