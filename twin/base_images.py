"""Stand-ins for the base images the Dockerfiles name (Docker Hub is not reachable from here).

Every ``FROM`` in docker/*.Dockerfile is resolved (``ARG`` defaults substituted) and each reference gets
a stand-in tagged with EXACTLY that reference, so ``docker build`` uses it without a pull. The stand-in is
Debian bookworm (``debootstrap --variant=minbase``) with Debian's python3.11 made to look like the
official ``python:3.11-slim-bookworm`` where the Dockerfiles rely on it: ``python``/``pip`` in
/usr/local/bin (a venv at /usr/local), ``groupadd``/``useradd`` (passwd, in minbase), ``PATH`` and
``LANG`` as the official image sets them, and the host's CA bundle trusted so pip inside a build
reaches the package index through a TLS-inspecting egress. docs/twin.md lists what differs.

The root filesystem is cached as a tarball keyed by a hash of the recipe (this file's recipe constants
and the host CA bundle); it is rebuilt only when the recipe changes, and ``podman import``-ed when the
tag is missing from local storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twin.system import podman

CACHE_DIR = Path(os.environ.get("TWIN_CACHE_DIR", "/var/cache/ml-delivery-twin"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3.11-distutils is a virtual package: python3-distutils provides it.
PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "ca-certificates",
)
# Run inside the new root: /usr/local becomes a venv so `python` and `pip` are /usr/local/bin/*, as in
# the official image; the host CA bundle (copied in before) replaces Debian's and pip is told to use it.
SETUP_SCRIPT = """\
set -eu
python3.11 -m venv /usr/local
test -x /usr/local/bin/pip
ln -sf python3.11 /usr/local/bin/python3
ln -sf python3.11 /usr/local/bin/python
/usr/local/bin/python -c 'import ssl, venv, ensurepip'
command -v groupadd > /dev/null && command -v useradd > /dev/null
cp /tmp/host-ca.crt /etc/ssl/certs/ca-certificates.crt
rm /tmp/host-ca.crt
printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /usr/share/doc /usr/share/man /usr/share/locale
"""
# The official image's ENV and CMD that the Dockerfiles inherit.
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["python3"]',
)

_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S+))?\s*$", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class BaseImageError(RuntimeError):
    """A Dockerfile's FROM could not be resolved, or the stand-in could not be built."""


def base_references(dockerfile: Path) -> list[str]:
    """External base image references of one Dockerfile, with ``ARG`` defaults (before the first FROM) applied.

    A ``FROM <stage>`` naming an earlier stage is not a base image and is skipped.
    """
    args: dict[str, str] = {}
    stages: set[str] = set()
    refs: list[str] = []
    seen_from = False
    for line in dockerfile.read_text().splitlines():
        arg = _ARG.match(line)
        if arg and not seen_from and arg.group(2) is not None:
            args[arg.group(1)] = arg.group(2).strip("\"'")
            continue
        match = _FROM.match(line)
        if not match:
            continue
        seen_from = True

        def substitute(var: re.Match[str]) -> str:
            name = var.group(1) or var.group(2)
            if name not in args:
                raise BaseImageError(f"{dockerfile}: FROM uses ${name}, which has no ARG default before the first FROM")
            return args[name]

        ref = _VAR.sub(substitute, match.group(1))
        if ref not in stages and ref != "scratch":
            refs.append(ref)
        if match.group(2):
            stages.add(match.group(2))
    return refs


def all_base_references(docker_dir: Path) -> list[str]:
    """Every distinct base reference across ``docker_dir/*.Dockerfile``, in file order."""
    refs: list[str] = []
    for dockerfile in sorted(docker_dir.glob("*.Dockerfile")):
        for ref in base_references(dockerfile):
            if ref not in refs:
                refs.append(ref)
    if not refs:
        raise BaseImageError(f"no FROM found in {docker_dir}/*.Dockerfile")
    return refs


def stand_in_reference(ref: str) -> str:
    """The local tag standing in for ``ref``: the reference without its ``@sha256:`` digest.

    podman cannot tag an image by digest (a digest names content, and the stand-in's content differs), so a
    digest-pinned FROM is built with ``--build-arg PYTHON_IMAGE=<this>`` instead (twin/shims.py); the pin
    itself is not emulated (docs/twin.md).
    """
    return ref.split("@", 1)[0]


def recipe_hash() -> str:
    """The cache key: everything that shapes the stand-in's content."""
    if not HOST_CA_BUNDLE.is_file():
        raise BaseImageError(
            f"{HOST_CA_BUNDLE} is missing: the stand-in trusts the host's CA bundle so pip inside a build "
            "can reach the package index; install Debian's ca-certificates"
        )
    digest = hashlib.sha256()
    recipe = {"suite": SUITE, "mirror": MIRROR, "packages": PACKAGES, "setup": SETUP_SCRIPT, "changes": IMAGE_CHANGES}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    digest.update(HOST_CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class StandIn:
    """The built (or cached) stand-in root filesystem and the image id it was imported as."""

    tarball: Path
    image_id: str
    built_seconds: float | None  # None: came from the cache


def _build_rootfs_tarball(tarball: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="twin-rootfs-", dir=CACHE_DIR))
    try:
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BaseImageError(f"debootstrap failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        shutil.copyfile(HOST_CA_BUNDLE, root / "tmp/host-ca.crt")
        done = subprocess.run(
            ["chroot", str(root), "/bin/sh", "-c", SETUP_SCRIPT], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BaseImageError(f"stand-in setup in the new root failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _image_id(ref: str) -> str | None:
    done = podman("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_stand_ins(docker_dir: Path, log: Callable[[str], object] = print) -> dict[str, StandIn]:
    """Make every base reference of ``docker_dir`` resolve locally to the current stand-in."""
    refs = all_base_references(docker_dir)
    key = recipe_hash()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"python-standin-{key}.tar"
    built: float | None = None
    if not tarball.exists():
        started = time.monotonic()
        log(f"building the base stand-in (debootstrap {SUITE}, recipe {key}) -> {tarball}")
        _build_rootfs_tarball(tarball)
        built = time.monotonic() - started
    label = f"ml-delivery-twin.recipe={key}"
    result: dict[str, StandIn] = {}
    image_id = None
    for ref in (stand_in_reference(r) for r in refs):
        current = podman(
            "image", "inspect", "--format", '{{ index .Labels "ml-delivery-twin.recipe" }}', ref, check=False
        )
        if current.returncode == 0 and current.stdout.strip() == key:
            result[ref] = StandIn(tarball, _image_id(ref) or "", built)
            continue
        if image_id is None:
            changes = [f"--change={c}" for c in (*IMAGE_CHANGES, f"LABEL {label}")]
            image_id = podman("import", *changes, str(tarball), ref).stdout.strip().splitlines()[-1]
            log(f"imported the stand-in as {ref} ({image_id[:19]})")
        else:
            podman("tag", image_id, ref)
            log(f"tagged the stand-in as {ref}")
        result[ref] = StandIn(tarball, image_id, built)
    return result


def main() -> int:
    """``python -m twin.base_images [docker_dir]``: ensure the stand-ins, print what was done."""
    import sys

    docker_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "docker")
    for ref, stand_in in ensure_stand_ins(docker_dir).items():
        how = "cached" if stand_in.built_seconds is None else f"built in {stand_in.built_seconds:.0f}s"
        print(f"{ref}: {stand_in.image_id[:19]} ({how}, {stand_in.tarball})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
