"""Move the keep tags and add the release tag on the promoted images (ECR lifecycle, infra/pipeline/registry.py).

ECR has no "add a tag" call: the documented way is BatchGetImage for the manifest, then PutImage of the same
manifest under the new tag (ECR User Guide, "Retagging an image"). The keep tags are excluded from tag
immutability, so PutImage moves them; the release tag is new every time. An ``ImageAlreadyExistsException``
(the tag already names this digest) is success.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from release.contracts import keep_tag, release_tag
from release.errors import ImageNotFoundError, ReleaseError

LOG = logging.getLogger(__name__)


def retag(ecr: Any, repository: str, digest: str, tags: list[str]) -> None:
    """Point each of ``tags`` in ``repository`` at the image ``digest``."""
    found = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[{"imageDigest": digest}],
        acceptedMediaTypes=[
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ],
    )
    if not found.get("images"):
        raise ImageNotFoundError(f"{repository}@{digest} is not in ECR ({found.get('failures')}); cannot tag it")
    image = found["images"][0]
    for tag in tags:
        request = {"repositoryName": repository, "imageManifest": image["imageManifest"], "imageTag": tag}
        if image.get("imageManifestMediaType"):
            request["imageManifestMediaType"] = image["imageManifestMediaType"]
        try:
            ecr.put_image(**request)
        except ecr.exceptions.ImageAlreadyExistsException:
            pass  # the tag already names this image
        except Exception as exc:
            raise ReleaseError(f"tagging {repository}@{digest} as {tag!r} failed: {exc}") from exc
        LOG.info("%s: %s -> %s", repository, tag, digest)


def tag_release(
    ecr: Any, *, app_repository: str, app_digest: str, jobs_repository: str, jobs_digest: str, at: datetime
) -> str:
    """keep-stage/keep-prod + release tag on the app image, keep-batch + release tag on the jobs image."""
    release = release_tag(at)
    retag(ecr, app_repository, app_digest, [keep_tag("stage"), keep_tag("prod"), release])
    retag(ecr, jobs_repository, jobs_digest, [keep_tag("batch"), release])
    return release
