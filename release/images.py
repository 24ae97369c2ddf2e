"""Image references and their digests in ECR.

ECR tags in this project are immutable, so the build pushes exactly one tag per image and every
deploy (ECS ``imagedefinitions.json``, Batch job definitions) names the image by digest: a
deploy is pinned to bytes, not to a name that could be re-pointed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from release.errors import ConfigurationError, ImageNotFoundError, ReleaseError

# <registry host>[:port]/<path>, the form of an ECR repository URI (and of any registry's).
_REPOSITORY = r"[a-z0-9][a-z0-9.-]*(?::[0-9]+)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*"
# Docker's tag grammar: up to 128 characters, not starting with '.' or '-'.
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
TAGGED_IMAGE_PATTERN = rf"^{_REPOSITORY}:{_TAG}$"
_ECR_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")


@dataclass(frozen=True)
class TaggedImage:
    """``<repository uri>:<tag>``, the name the build pushes."""

    repository_uri: str
    tag: str

    @classmethod
    def parse(cls, reference: str) -> TaggedImage:
        if not re.fullmatch(TAGGED_IMAGE_PATTERN, reference):
            raise ConfigurationError(
                f"image reference {reference!r} is not '<registry>/<repository>:<tag>' "
                "(lower-case repository path, tag of letters, digits, '_', '.', '-')"
            )
        repository_uri, tag = reference.rsplit(":", 1)
        return cls(repository_uri=repository_uri, tag=tag)

    @property
    def registry(self) -> str:
        return self.repository_uri.split("/", 1)[0]

    @property
    def repository_name(self) -> str:
        return self.repository_uri.split("/", 1)[1]

    @property
    def registry_id(self) -> str | None:
        """The account id of an ECR registry host; ``None`` for any other registry."""
        match = _ECR_HOST.match(self.registry)
        return match.group("account") if match else None

    def pinned(self, digest: str) -> str:
        """``<repository uri>@<digest>``: what a deploy names, so it runs exactly these bytes."""
        if not re.fullmatch(DIGEST_PATTERN, digest):
            raise ConfigurationError(f"image digest {digest!r} is not 'sha256:' followed by 64 lower-case hex digits")
        return f"{self.repository_uri}@{digest}"

    def __str__(self) -> str:
        return f"{self.repository_uri}:{self.tag}"


class EcrImageLookup:
    """Finds the digest behind a tag with ``ecr:DescribeImages`` (the registry's answer, not the local daemon's)."""

    def __init__(self, ecr_client: Any) -> None:
        self.ecr = ecr_client

    def digest(self, image: TaggedImage) -> str | None:
        """The image's digest, or ``None`` when the tag is not in the repository."""
        request: dict[str, Any] = {"repositoryName": image.repository_name, "imageIds": [{"imageTag": image.tag}]}
        if image.registry_id:
            request["registryId"] = image.registry_id
        try:
            details = self.ecr.describe_images(**request)["imageDetails"]
        except self.ecr.exceptions.ImageNotFoundException:
            return None
        except self.ecr.exceptions.RepositoryNotFoundException as exc:
            raise ReleaseError(
                f"ECR repository {image.repository_name!r} does not exist in registry {image.registry}; "
                "the infra creates it (check APP_REPOSITORY_URI / JOBS_REPOSITORY_URI)"
            ) from exc
        if not details:
            return None
        digest: str = details[0]["imageDigest"]
        if not re.fullmatch(DIGEST_PATTERN, digest):
            raise ReleaseError(f"ECR returned digest {digest!r} for {image}, which is not a sha256 digest")
        return digest

    def require_digest(self, image: TaggedImage) -> str:
        digest = self.digest(image)
        if digest is None:
            raise ImageNotFoundError(f"image {image} is not in ECR; was it pushed?")
        return digest
