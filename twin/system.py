"""System setup for the twin: Debian's podman, runc, debootstrap and docker-registry, and one way to call podman.

Idempotent: installs only what is missing (``apt-get`` as root, or through sudo), so ``make e2e`` works on
a fresh CI machine and costs nothing on a prepared one. podman always runs with ``--runtime runc``
(crun fails on ``setrlimit`` on these machines) through a containers.conf the twin writes and points
``CONTAINERS_CONF`` at, so the ``docker`` shim and every ``podman`` the twin starts use the same engine.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

# Debian package -> the executable that proves it is installed.
REQUIRED_PACKAGES: dict[str, str] = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
}

STATE_DIR = Path(os.environ.get("TWIN_STATE_DIR", "/var/lib/ml-delivery-twin"))
CONTAINERS_CONF = STATE_DIR / "containers.conf"
# nproc: runc cannot set RLIMIT_NPROC to podman's rootful default (4194304) nor to this sandbox's own
# limit ("error setting rlimit type 6: operation not permitted"); 32768 is accepted and ample. nofile:
# the host's own limits (podman's default 1048576 exceeds them).
NPROC_LIMIT = 32768


def _containers_conf_text() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        "# Written by twin/system.py: the twin's podman always uses runc (crun fails on setrlimit here).\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={soft}:{hard}", "nproc={NPROC_LIMIT}:{NPROC_LIMIT}"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
    )


class PodmanError(subprocess.CalledProcessError):
    """A podman call failed; unlike CalledProcessError its message carries podman's stderr."""

    def __str__(self) -> str:
        return f"{' '.join(self.cmd[:6])} ... exited {self.returncode}: {(self.stderr or '').strip()[-4000:]}"


class SetupError(RuntimeError):
    """The machine lacks something the twin needs and it could not be installed."""


def _which(executable: str) -> str | None:
    return shutil.which(executable) or shutil.which(executable, path="/usr/sbin:/usr/bin:/sbin:/bin")


def missing_packages() -> list[str]:
    """Debian packages whose executable is not on this machine."""
    return [package for package, exe in REQUIRED_PACKAGES.items() if _which(exe) is None]


def ensure_packages() -> list[str]:
    """Install the missing packages with apt-get; return what was installed (empty when nothing was missing)."""
    missing = missing_packages()
    if not missing:
        return []
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif _which("sudo"):
        prefix = ["sudo", "-n"]
    else:
        raise SetupError(
            f"the twin needs Debian packages {missing}; run as root or with passwordless sudo, "
            f"or install them: apt-get install {' '.join(missing)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [*prefix, "apt-get", "update", "-qq"],
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SetupError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    still = missing_packages()
    if still:
        raise SetupError(f"apt-get install finished but {still} are still missing")
    return missing


def engine_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every podman call of the twin runs with (runc via CONTAINERS_CONF)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    text = _containers_conf_text()
    if not CONTAINERS_CONF.exists() or CONTAINERS_CONF.read_text() != text:
        CONTAINERS_CONF.write_text(text)
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    if extra:
        env.update(extra)
    return env


def podman(
    *args: str,
    check: bool = True,
    capture: bool = True,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``podman --runtime runc ARGS``; on failure raise with podman's stderr (not just an exit code)."""
    command = ["podman", "--runtime", "runc", *args]
    done = subprocess.run(
        command,
        env=env or engine_env(),
        capture_output=capture,
        text=True,
        input=input,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise PodmanError(done.returncode, command, done.stdout, done.stderr)
    return done


def main() -> int:
    """``python -m twin.system``: install what is missing and say so."""
    try:
        installed = ensure_packages()
    except SetupError as exc:
        print(f"twin setup: {exc}", file=sys.stderr)
        return 1
    engine_env()
    print(f"twin setup: {'installed ' + ', '.join(installed) if installed else 'all system packages present'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
