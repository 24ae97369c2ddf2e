"""Issue #12 defect 11: ``make test`` on a fresh machine installs the database servers the suite starts.

The script's "what is missing" logic runs against a fake filesystem root (``ENSURE_PACKAGES_ROOT``), its
install plan is printed with ``--dry-run`` (nothing is installed here), and without root or sudo it stops
with a message naming the packages. The Makefile's ``test`` target and ``.ci/run`` both call it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "ensure-system-packages.sh"


def run(*args: str, root: Path, uid: int | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(SCRIPT), *args]
    if uid is not None:
        argv = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", *argv]
    environ = {"PATH": os.environ["PATH"], "ENSURE_PACKAGES_ROOT": str(root), **env}
    return subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=60, check=False)


def fake_binary(root: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_reports_what_is_missing(tmp_path: Path) -> None:
    assert run("--check", root=tmp_path).stdout.split() == ["postgresql", "mariadb-server"]
    fake_binary(tmp_path, "usr/lib/postgresql/15/bin/initdb")
    assert run("--check", root=tmp_path).stdout.split() == ["mariadb-server"]
    fake_binary(tmp_path, "usr/sbin/mariadbd")
    result = run("--check", root=tmp_path)
    assert result.returncode == 0 and result.stdout.split() == []


def test_installs_only_what_is_missing_with_apt_get(tmp_path: Path) -> None:
    fake_binary(tmp_path, "usr/sbin/mariadbd")
    result = run("--dry-run", root=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "apt-get" in line]
    sudo = "" if os.geteuid() == 0 else "sudo -n "
    assert commands[0].strip() == f"{sudo}apt-get update -qq"
    assert re.fullmatch(rf"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
                        r"postgresql", commands[1].strip()), commands  # fmt: skip
    fake_binary(tmp_path, "usr/lib/postgresql/16/bin/initdb")
    nothing = run("--dry-run", root=tmp_path)
    assert nothing.returncode == 0 and "apt-get" not in nothing.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_without_root_or_sudo_it_says_what_to_install(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    result = run(root=tmp_path, uid=10001, ENSURE_PACKAGES_SUDO="no-such-sudo")
    assert result.returncode != 0
    assert "postgresql" in result.stderr and "mariadb-server" in result.stderr
    assert "root" in result.stderr and "sudo" in result.stderr and "apt-get install" in result.stderr


def test_make_test_and_ci_call_the_same_script() -> None:
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^test:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.MULTILINE)
    assert target, "Makefile has a test target"
    prerequisites, recipe = target[1], target[2]
    assert "system-packages" in prerequisites.split() or "ensure-system-packages.sh" in recipe
    rule = re.search(r"^system-packages:[^\n]*\n((?:\t[^\n]*\n)*)", makefile, re.MULTILINE)
    assert rule and "scripts/ensure-system-packages.sh" in rule[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/ensure-system-packages.sh" in ci or "make system-packages" in ci
    assert "apt-get" not in ci, ".ci/run installs through the script, not its own copy"
