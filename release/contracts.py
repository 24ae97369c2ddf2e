"""Names shared by the infra (Pulumi) and the pipeline's release step: the one place for each.

Stdlib only: the jobs image and the Release CodeBuild project import it without the infra's dependencies,
and ``infra/`` imports it rather than defining the names itself.
"""

from __future__ import annotations

from datetime import UTC, datetime

SERVICES = ("stage", "prod")
KEEP_TAG_PREFIX = "keep-"
RELEASE_TAG_PREFIX = "release-"
# Consumers whose running image carries a moving keep tag (ECR lifecycle rule 1, infra/pipeline/registry.py).
KEEP_CONSUMERS = ("stage", "prod", "batch")


def deployed_image_parameter(stack: str, service: str) -> str:
    """SSM parameter holding the image the pipeline last deployed to ``service`` (``<repo>@sha256:<digest>``).

    Written by ``python -m release deployed-image`` in the Release step, read by Pulumi
    (infra/service/model_service.py) so a ``pulumi up`` keeps the deployed image (docs/pipeline.md,
    "Who owns the image").
    """
    if service not in SERVICES:
        raise ValueError(f"deployed-image parameter for {service!r}: services are {SERVICES}")
    return f"/ml-delivery/{stack}/{service}/deployed-image"


def keep_tag(consumer: str) -> str:
    """The moving tag on the image ``consumer`` (stage, prod, batch) runs now."""
    if consumer not in KEEP_CONSUMERS:
        raise ValueError(f"keep tag for {consumer!r}: consumers are {KEEP_CONSUMERS}")
    return f"{KEEP_TAG_PREFIX}{consumer}"


def release_tag(at: datetime) -> str:
    """The immutable tag added once to every promoted image: ``release-<UTC yyyymmddThhmmssZ>``."""
    if at.tzinfo is None:
        raise ValueError(f"release tag time {at!r} has no time zone; give an aware UTC datetime")
    return f"{RELEASE_TAG_PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"
