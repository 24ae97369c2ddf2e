"""Container image references: the one pinned base image and the rules every reference must follow.

No Docker Hub (issue #16 item 6): anonymous pulls from CodeBuild and Fargate leave through one NAT
address and hit Docker Hub's rate limit. The official Python image is pulled from ECR Public's copy
(``public.ecr.aws/docker/library/python``, the "Docker Official Images on ECR Public" gallery), or through
an ECR pull-through cache rule of the account (stack key ``baseImageSource``), and always by digest, so a
rebuild gets the same bytes the last one did (ECR User Guide, "Pulling an image": ``repository@digest``).

``PYTHON_BASE_IMAGE`` is the single source of the reference: both Dockerfiles' ``ARG PYTHON_IMAGE``
default must equal it (tests/infra/test_delivery_images.py), the bootstrap image runs it, and the build
passes it (or its pull-through-cache form) as ``--build-arg PYTHON_IMAGE``.

The digests: this repository is written without network access to a registry, so they are not read from the
registry here. ``PYTHON_BASE_DIGEST`` is the multi-architecture index digest of ``python:3.11.14-slim-bookworm``
as several public projects pin it (ECR Public's ``docker/library`` copy serves the official images' manifests
unchanged, so the digest is the same); ``BUILDKIT_IMAGE``'s is ``moby/buildkit:buildx-stable-1`` as inspected at
BuildKit v0.32.2. A digest never moves, so a build either gets exactly these bytes or fails to pull: check both
once with ``crane digest <reference>`` (or ``docker buildx imagetools inspect``) before the first real build, and
when refreshing the base, change the tag and digest here together; the Dockerfiles' ARG defaults follow via
tests/infra/test_delivery_images.py.
"""

from __future__ import annotations

import re

PYTHON_BASE_REPOSITORY = "public.ecr.aws/docker/library/python"
PYTHON_BASE_TAG = "3.11.14-slim-bookworm"
PYTHON_BASE_DIGEST = "sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d"
PYTHON_BASE_IMAGE = f"{PYTHON_BASE_REPOSITORY}:{PYTHON_BASE_TAG}@{PYTHON_BASE_DIGEST}"
# BuildKit for `docker buildx` (the docker-container driver: the default docker driver cannot export a
# registry cache; Docker docs, "Cache storage backends"). Named explicitly so buildx does not pull
# moby/buildkit from Docker Hub: ECR Public's mirror (the one docker/setup-buildx-action defaulted to),
# pinned by digest like the base.
BUILDKIT_IMAGE = (
    "public.ecr.aws/vend/moby/buildkit:buildx-stable-1"
    "@sha256:28a898719c18a33f4e8000685287fa36fd0dd9560c6440227d3a732d79bb41d8"
)
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
