"""Issue #16 item 6: no Docker Hub anywhere, base images pinned by digest, from ECR Public or through an
ECR pull-through cache rule (stack key ``baseImageSource``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.foundation.hardening import BOOTSTRAP_IMAGE
from infra.lib.images import PULL_THROUGH_PREFIX, PYTHON_BASE_IMAGE, is_digest_pinned
from infra.settings import ConfigError
from policy.policies import is_docker_hub
from tests.infra.plan_queries import role_policy, statements
from tests.infra.test_pipeline import project_env
from tests.policy.test_images import DOCKERFILES, from_images
from tools.plan.offline import OfflineRun, run_offline


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_dockerfile_builds_on_the_one_digest_pinned_base(dockerfile: Path) -> None:
    images = from_images(dockerfile.read_text())
    assert images == [PYTHON_BASE_IMAGE] * len(images), dockerfile.name
    assert all(is_digest_pinned(i) and not is_docker_hub(i) for i in images)
    # Overridable, so the build can pull the same digest through the account's cache rule.
    assert "ARG PYTHON_IMAGE=" in dockerfile.read_text()


def test_bootstrap_image_is_the_pinned_base_and_not_docker_hub(stack: OfflineRun) -> None:
    assert BOOTSTRAP_IMAGE == PYTHON_BASE_IMAGE and is_digest_pinned(BOOTSTRAP_IMAGE)
    for task in stack.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for container in json.loads(task.inputs["containerDefinitions"]):
            assert not is_docker_hub(container["image"]) and is_digest_pinned(container["image"]), task.name
    for job in stack.of_type("aws:batch/jobDefinition:JobDefinition"):
        image = json.loads(job.inputs["containerProperties"])["image"]
        assert not is_docker_hub(image) and ".dkr.ecr." in image, job.name


@pytest.mark.parametrize("image", ["python:3.11-slim", "docker.io/library/python:3.11-slim@sha256:" + "a" * 64,
                                   "public.ecr.aws/docker/library/python:3.11-slim-bookworm"])  # fmt: skip
def test_bootstrap_image_key_refuses_docker_hub_and_tags(image: str) -> None:
    with pytest.raises(ConfigError, match="bootstrapImage"):
        run_offline("dev", overrides={"ml-delivery:bootstrapImage": image})


def test_build_gets_the_base_image_from_ecr_public_by_default(dev: OfflineRun) -> None:
    assert project_env(dev, "build")["PYTHON_IMAGE"] == PYTHON_BASE_IMAGE
    assert not dev.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")


def test_pull_through_cache_rule_by_stack_key() -> None:
    run = run_offline("dev", overrides={"ml-delivery:baseImageSource": "pull-through-cache"})
    (rule,) = run.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    assert rule.inputs == {"ecrRepositoryPrefix": PULL_THROUGH_PREFIX, "upstreamRegistryUrl": "public.ecr.aws"}
    image = project_env(run, "build")["PYTHON_IMAGE"]
    assert image == PYTHON_BASE_IMAGE.replace(
        "public.ecr.aws", "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecr-public"
    )
    assert is_digest_pinned(image)
    grants = {s["Sid"]: s for s in statements(role_policy(run, "delivery-build-role"))}
    pull = grants["PullThroughCache"]
    assert pull["Resource"] == ["arn:aws:ecr:us-east-1:123456789012:repository/ecr-public/*"]
    assert "ecr:BatchImportUpstreamImage" in pull["Action"]


def test_model_is_the_app_images_last_content_layer() -> None:
    """Issue #16 item 8: after the model COPY only the load check (and metadata) follows, so a model-only
    change rebuilds one layer and everything before it comes from the registry cache."""
    dockerfile = next(d for d in DOCKERFILES if d.name == "app.Dockerfile")
    instructions = [line.split()[0] for line in dockerfile.read_text().splitlines()
                    if line and not line.startswith((" ", "#", "\t"))]  # fmt: skip
    lines = [line for line in dockerfile.read_text().splitlines() if line and not line.startswith((" ", "#"))]
    model = next(i for i, line in enumerate(lines) if line.startswith("COPY ${MODEL_SRC}"))
    after = [line.split()[0] for line in lines[model + 1 :]]
    assert after.count("RUN") == 1 and "COPY" not in after and "ADD" not in after, after
    assert "python -c" in lines[model + 1] and "model_fn" in lines[model + 1]
    assert instructions.count("COPY") >= 3
