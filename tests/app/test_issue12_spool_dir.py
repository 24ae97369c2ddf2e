"""Issue #12 defect 1: the app as the ECS task definition runs it on Fargate.

Fargate gives a task's bind mount (the "tmp" volume at ``/tmp``) to the container as an empty directory owned
by root with mode 0755, unless the image declares that very path as ``VOLUME``: then the image's content at
that path, with its ownership, is copied into the volume (ECS Developer Guide, "Use bind mounts with Amazon
ECS" and "Bind mount examples"). The image runs as uid 10001. These tests run the real ``python -m app`` as
uid 10001 (``setpriv``; we are root) against such directories, and check that the Dockerfile and the task
definition agree on the path, its owner and the declaration.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.exit_codes import ExitCode
from tests.app.conftest import REPO, TrainedPackage
from tests.support.servers import LOOPBACK, free_port, wait_until
from tools.plan.offline import OfflineRun, run_offline

APP_UID = 10001
DOCKERFILE = REPO / "docker" / "app.Dockerfile"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")  # the venv's interpreter lives under /root (0700): not for uid 10001
SETPRIV = shutil.which("setpriv")

needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None or not SYSTEM_PYTHON.exists(),
    reason="needs root, setpriv (util-linux) and /usr/bin/python3.11 to run the app as uid 10001",
)


@pytest.fixture
def world_readable(tmp_path: Path) -> Iterator[Path]:
    """A directory uid 10001 can read (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="issue12-spool-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_app_as_10001(model: Path, spool_dir: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{site.getsitepackages()[0]}:{REPO}",
        "SPOOL_DIR": str(spool_dir),
        "SERVICE_NAME": "stage",
        "LOG_LEVEL": "INFO",
        "HOME": "/nonexistent",
    }
    argv = [SETPRIV, "--reuid", str(APP_UID), "--regid", str(APP_UID), "--clear-groups", str(SYSTEM_PYTHON),
            "-m", "app", "--model", str(model), "--host", LOOPBACK, "--port", str(port), "--workers", "1"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _fargate_mount(root: Path) -> Path:
    """What Fargate mounts at /tmp for an image that does not declare it: empty, root:root, 0755."""
    mount = root / "tmp-volume"
    mount.mkdir()
    os.chown(mount, 0, 0)
    mount.chmod(0o755)
    return mount


@needs_setpriv
def test_unwritable_spool_dir_stops_the_app_with_a_message_not_a_traceback(
    trained: TrainedPackage, world_readable: Path
) -> None:
    model = world_readable / "model.zip"
    shutil.copy(trained.path, model)
    model.chmod(0o644)
    mount = _fargate_mount(world_readable)
    log = world_readable / "app.log"
    process = _run_app_as_10001(model, mount / "capture-spool", log, free_port())
    code = process.wait(90)
    output = log.read_text(errors="replace")
    assert code == ExitCode.CONFIG, output  # app.config.ConfigError.exit_code: a bad SPOOL_DIR is configuration
    assert "Traceback" not in output, output
    assert "refusing to start" in output and f"SPOOL_DIR={mount / 'capture-spool'}" in output, output
    assert f"uid {APP_UID}" in output and "VOLUME" in output, output


@needs_setpriv
def test_the_seeded_volume_lets_the_app_serve(trained: TrainedPackage, world_readable: Path) -> None:
    """The same mount after Fargate seeded it from the image's VOLUME: the spool dir owned by the app user."""
    model = world_readable / "model.zip"
    shutil.copy(trained.path, model)
    model.chmod(0o644)
    mount = _fargate_mount(world_readable)
    volume, owner, spool = dockerfile_volume_contract()
    assert spool.startswith(volume.rstrip("/") + "/")
    seeded = mount / Path(spool).relative_to(volume)
    seeded.mkdir(parents=True)
    os.chown(seeded, owner, owner)
    port, log = free_port(), world_readable / "app.log"
    process = _run_app_as_10001(model, seeded, log, port)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"app exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/ready", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, 90, "app as uid 10001 on the seeded volume")
        assert any(p.stat().st_uid == APP_UID for p in seeded.rglob("*")), "the app spools under the seeded dir"
    finally:
        process.terminate()
        process.wait(60)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.MULTILINE)]
    last_from = max(i for i, (name, _) in enumerate(found) if name == "FROM")
    return found[last_from:]


def dockerfile_volume_contract() -> tuple[str, int, str]:
    """(the VOLUME path, the uid that owns the spool dir there, SPOOL_DIR) as docker/app.Dockerfile declares them."""
    steps = _instructions(DOCKERFILE.read_text())
    env = " ".join(args for name, args in steps if name == "ENV")
    spool = re.search(r"SPOOL_DIR=(\S+)", env)
    assert spool, "the image sets SPOOL_DIR"
    volumes = [i for i, (name, _) in enumerate(steps) if name == "VOLUME"]
    assert len(volumes) == 1, "the image declares exactly one VOLUME"
    index = volumes[0]
    paths = re.findall(r'"([^"]+)"', steps[index][1])
    assert len(paths) == 1, steps[index]
    runs_before = " ".join(args for name, args in steps[:index] if name == "RUN")
    spool_ref = r"(?:\$\{SPOOL_DIR\}|\$SPOOL_DIR|" + re.escape(spool[1]) + ")"
    assert re.search(r"mkdir -p \"?" + spool_ref, runs_before), "the image creates the spool dir before VOLUME"
    owner = re.search(r"chown (\d+):(\d+) \"?" + spool_ref, runs_before)
    assert owner, "the spool dir is chowned to a numeric uid:gid before VOLUME (later changes would be discarded)"
    assert not any(name == "RUN" for name, _ in steps[index + 1 :]), "no RUN after VOLUME changes the volume"
    return paths[0], int(owner[1]), spool[1]


@pytest.fixture(scope="module")
def dev() -> OfflineRun:
    return run_offline("dev")


def test_dockerfile_and_task_definition_agree_on_the_writable_volume(dev: OfflineRun) -> None:
    import json

    volume, owner, spool = dockerfile_volume_contract()
    steps = _instructions(DOCKERFILE.read_text())
    (user,) = [args for name, args in steps if name == "USER"]
    assert user.split(":")[0] == str(owner) == str(APP_UID), "the spool dir belongs to the user the image runs as"
    for service in ("stage", "prod"):
        task = dev.one("aws:ecs/taskDefinition:TaskDefinition", f"{service}-task").inputs
        (container,) = json.loads(task["containerDefinitions"])
        assert container["readonlyRootFilesystem"] is True
        env = {e["name"]: e["value"] for e in container["environment"]}
        mounts = {m["containerPath"] for m in container["mountPoints"]}
        assert volume in mounts, f"VOLUME {volume} must be the containerPath of a mount, got {mounts}"
        assert env["SPOOL_DIR"] == spool and spool.startswith(volume.rstrip("/") + "/")
        assert {v["name"] for v in task["volumes"]} >= {m["sourceVolume"] for m in container["mountPoints"]}


def test_batch_jobs_write_their_temp_files_where_they_can(dev: OfflineRun) -> None:
    """The same trap for the jobs image: it writes temp files (tempfile, MPLCONFIGDIR) under /tmp, so a job
    definition with a read-only root must mount /tmp and the jobs image must declare VOLUME ["/tmp"]."""
    import json

    jobs_steps = _instructions((REPO / "docker" / "jobs.Dockerfile").read_text())
    env = " ".join(args for name, args in jobs_steps if name == "ENV")
    assert re.search(r"MPLCONFIGDIR=/tmp/", env), "matplotlib's config/cache dir is under /tmp"
    declared = {p for name, args in jobs_steps if name == "VOLUME" for p in re.findall(r'"([^"]+)"', args)}
    definitions = dev.of_type("aws:batch/jobDefinition:JobDefinition")
    assert len(definitions) == 4
    for definition in definitions:
        container = json.loads(definition.inputs["containerProperties"])
        if container.get("readonlyRootFilesystem"):
            mounts = {m["containerPath"] for m in container.get("mountPoints", [])}
            assert "/tmp" in mounts and "/tmp" in declared, definition.name
        else:
            # A writable root: the image's /tmp (root, 1777 in the Debian base) is usable by uid 10001.
            assert not container.get("mountPoints"), definition.name
