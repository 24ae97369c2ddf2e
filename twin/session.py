"""One running twin: moto (the plan's AWS side, provisioned by twin.aws from the plan JSON), the local
registry standing in for ECR, the stand-in base images, and the environment the buildspecs and
workloads run with. Used by tests/twin and by nothing that ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import MotoServer
from twin.base_images import ensure_stand_ins
from twin.containers import ECR_HOST, AwsEndpoint
from twin.plan import Plan
from twin.registry import LocalRegistry
from twin.system import engine_env, ensure_packages, podman

TWIN_BIN = Path(__file__).resolve().parent / "bin"


def clean_copy(repo: Path, dest: Path) -> Path:
    """A copy of the checkout as CodeCommit would hand it over: tracked and new (not ignored) files only,
    mtimes kept (so ``make venv`` sees the shared venv as current). ``.venv`` links to the same venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        source = repo / raw.decode()
        if not source.is_file() or (source.is_symlink() and raw.decode() == ".venv"):
            continue
        target = dest / raw.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    venv = repo / ".venv"
    stamp = venv / "bin" / ".installed"
    if stamp.exists():
        # The pinned environment is already installed (the same requirements/dev.lock); the Build's
        # `make venv` must find it current rather than rebuild it through the link, so the copy's lock
        # file is dated just before the venv's stamp. docs/twin.md says so.
        (dest / ".venv").symlink_to(venv.resolve())
        lock = dest / "requirements" / "dev.lock"
        if lock.exists():
            before = stamp.stat().st_mtime - 1
            os.utime(lock, (before, before))
    return dest


def git_sha(repo: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Twin:
    """The running pieces; ``stop()`` ends only what this twin started."""

    repo: Path
    plan: Plan
    moto: MotoServer
    registry: LocalRegistry
    aws: AwsEndpoint
    resources: Any
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="twin-")))

    @classmethod
    def start(cls, repo: Path, plan_doc: dict[str, Any], log: Callable[[str], object] = print) -> Twin:
        from twin.aws import provision

        installed = ensure_packages()
        log(f"system packages: {'installed ' + ', '.join(installed) if installed else 'present'}")
        engine_env()
        for ref, stand_in in ensure_stand_ins(repo / "docker", log=log).items():
            how = "cached" if stand_in.built_seconds is None else f"built in {stand_in.built_seconds:.0f}s"
            log(f"base image {ref}: stand-in {stand_in.image_id[:19]} ({how})")
        plan = Plan(plan_doc)
        ecr_hosts = sorted(
            {plan.outputs[k].split("/", 1)[0] for k in ("appRepositoryUrl", "jobsRepositoryUrl")}
            | {h for h in [os.environ.get("TWIN_EXTRA_ECR_HOST", "")] if h and ECR_HOST.match(h)}
        )
        registry = LocalRegistry(ecr_hosts).start()
        moto = MotoServer()
        moto.start()
        try:
            resources = provision(plan_doc, moto.endpoint_url)
        except BaseException:
            moto.stop()
            registry.stop()
            raise
        aws = AwsEndpoint(moto.endpoint_url, plan.region)
        log(f"moto on {moto.endpoint_url} provisioned from the plan; registry (ECR) on {registry.address}")
        return cls(repo=repo, plan=plan, moto=moto, registry=registry, aws=aws, resources=resources)

    def shell_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What a CodeBuild container of the twin sees: the shims first on PATH, AWS pointed at moto."""
        env = engine_env(
            {
                "PATH": f"{TWIN_BIN}:{os.environ['PATH']}",
                "TWIN_REGISTRY": self.registry.address,
                "TWIN_PYTHON": sys.executable,
                "CONTAINERS_REGISTRIES_CONF": str(self.registry.registries_conf),
                "AWS_REGION": self.aws.region,
                **self.aws.env(),
            }
        )
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER"):
            env.pop(name, None)
        env.update(extra or {})
        return env

    def remove_images(self) -> list[str]:
        """Untag what this twin pushed or pulled (ECR-named and local-registry images); podman's build
        cache (the untagged intermediate layers) stays, so the next run's builds are fast.
        ``podman image prune`` reclaims the space."""
        prefixes = (f"{self.registry.address}/", *self.registry.ecr_registries)
        listed = podman("images", "--format", "{{.ID}} {{.Repository}}", check=False).stdout.splitlines()
        mine = sorted(
            {line.split()[0] for line in listed if line.split()[1:2] and line.split()[1].startswith(prefixes)}
        )
        for image_id in mine:
            # untag, not rmi: rmi would also prune the untagged parent layers that are podman's build cache.
            podman("untag", image_id, check=False)
        return mine

    def stop(self) -> None:
        self.remove_images()
        self.moto.stop()
        self.registry.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.registry.workdir, ignore_errors=True)
