"""No image from Docker Hub: every Dockerfile's FROM (with ARG defaults resolved) is checked with the policy
pack's own ``is_docker_hub`` (issue #17); the same function refuses the references Docker resolves to Hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policy.policies import is_docker_hub

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*Dockerfile"))


def from_images(text: str) -> list[str]:
    """The image of every FROM, ``${ARG}`` replaced by the ARG's default; stage names are not images."""
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages: set[str] = set()
    images = []
    for image, stage in re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image)
        if resolved not in stages:
            images.append(resolved)
        if stage:
            stages.add(stage)
    return images


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_pulls_nothing_from_docker_hub(dockerfile: Path) -> None:
    images = from_images(dockerfile.read_text())
    assert images, f"{dockerfile.name}: no FROM found"
    hub = [i for i in images if is_docker_hub(i)]
    assert not hub, f"{dockerfile.name}: FROM {hub} pulls from Docker Hub; use public.ecr.aws/docker/library/..."


def test_the_check_refuses_docker_hub_references() -> None:
    bad = "ARG BASE=python:3.11-slim\nFROM ${BASE} AS deps\nFROM deps\nFROM docker.io/library/nginx:1.27\n"
    assert from_images(bad) == ["python:3.11-slim", "docker.io/library/nginx:1.27"]
    assert all(is_docker_hub(i) for i in ["python:3.11", "traefik/whoami:v1", "index.docker.io/x/y:1"])
    assert not any(is_docker_hub(i) for i in ["public.ecr.aws/docker/library/python:3.11",
                                               "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                                               "localhost/app:dev"])  # fmt: skip
