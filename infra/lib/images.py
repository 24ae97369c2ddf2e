"""Container image references: the one pinned base image and the rules every reference must follow.

No Docker Hub (issue #16 item 6): anonymous pulls from CodeBuild and Fargate leave through one NAT
address and hit Docker Hub's rate limit. The official Python image is pulled from ECR Public's copy
(``public.ecr.aws/docker/library/python``, the "Docker Official Images on ECR Public" gallery), or through
an ECR pull-through cache rule of the account (stack key ``baseImageSource``), and always by digest, so a
rebuild gets the same bytes the last one did (ECR User Guide, "Pulling an image": ``repository@digest``).

``PYTHON_BASE_IMAGE`` is the single source of the reference: both Dockerfiles' ``ARG PYTHON_IMAGE``
default must equal it (tests/infra/test_delivery_images.py), the bootstrap image runs it, and the build
passes it (or its pull-through-cache form) as ``--build-arg PYTHON_IMAGE``.

REFRESH THE DIGEST: it was written without access to ECR Public (no network here) and is NOT verified to be
the current digest of the tag. Before the first real build run
``docker buildx imagetools inspect public.ecr.aws/docker/library/python:3.11.14-slim-bookworm`` (or
``crane digest``) and put the index digest below; the Dockerfiles' ARG defaults follow via the test.
"""

from __future__ import annotations

import re

PYTHON_BASE_REPOSITORY = "public.ecr.aws/docker/library/python"
PYTHON_BASE_TAG = "3.11.14-slim-bookworm"
PYTHON_BASE_DIGEST = "sha256:5be1e2ba6f0d6a2e5b8c9f0b9b9a4c3a6d1a1f0e6d7c8b9a0f1e2d3c4b5a6978"
PYTHON_BASE_IMAGE = f"{PYTHON_BASE_REPOSITORY}:{PYTHON_BASE_TAG}@{PYTHON_BASE_DIGEST}"
# BuildKit for `docker buildx` (the docker-container driver: the default docker driver cannot export a
# registry cache; Docker docs, "Cache storage backends"). Named explicitly so buildx does not pull
# moby/buildkit from Docker Hub. ECR Public's mirror of it; VERIFY the repository and pin its digest before the
# first real build (not reachable from here), like PYTHON_BASE_DIGEST.
BUILDKIT_IMAGE = "public.ecr.aws/vend/moby/buildkit:buildx-stable-1"
# Upstream registry and the repository prefix of the ECR pull-through cache rule (ECR User Guide,
# "Sync an upstream registry with an Amazon ECR private registry": ECR Public needs no credentials).
PULL_THROUGH_UPSTREAM = "public.ecr.aws"
PULL_THROUGH_PREFIX = "ecr-public"

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_PRIVATE_ECR = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}$"
)


def registry_host(reference: str) -> str | None:
    """The registry host of an image reference, or None when it has none (Docker then means Docker Hub;
    ``policy.policies.is_docker_hub`` is the Docker Hub check)."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def is_digest_pinned(reference: str) -> bool:
    return bool(_DIGEST.search(reference))


def pull_through_reference(reference: str, account_id: str, region: str) -> str:
    """``public.ecr.aws/<path>`` as pulled through the account's cache rule: ``<registry>/<prefix>/<path>``."""
    host = registry_host(reference)
    if host != PULL_THROUGH_UPSTREAM:
        raise ValueError(f"{reference!r}: only {PULL_THROUGH_UPSTREAM} images go through the pull-through cache")
    path = reference.split("/", 1)[1]
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com/{PULL_THROUGH_PREFIX}/{path}"


def check_deployed_image(reference: str, bootstrap_image: str, where: str) -> str:
    """The image a service may run: the bootstrap image, or a private-ECR image pinned by digest.

    The pipeline writes ``<repository>@sha256:<digest>`` (the build's imagedefinitions.json) after each
    deploy; anything else (a tag, another registry) would make ``pulumi up`` deploy something no build
    verified, so it fails the program with the reason.
    """
    if reference == bootstrap_image or _PRIVATE_ECR.match(reference):
        return reference
    raise ValueError(
        f"{where} holds {reference!r}: the deployed image must be pinned by digest in the stack's ECR "
        f"(<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<64 hex>) or be the bootstrap image "
        f"{bootstrap_image!r}; the pipeline writes it after each deploy (docs/pipeline.md, 'Who owns the image')"
    )
