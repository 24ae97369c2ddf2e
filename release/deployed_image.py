"""Record the image the pipeline deployed in the SSM parameter Pulumi reads (issue #16 item 4).

Without it the next ``pulumi up`` would register the task definition with the image Pulumi last knew (the
bootstrap image) and roll the services back. Stage and prod run the same digest (promotion by digest), so
the Release step writes both from the build's ``imagedefinitions.json`` (docs/pipeline.md, "Who owns the image").
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from release.contracts import SERVICES, deployed_image_parameter
from release.errors import ConfigurationError, ReleaseError

LOG = logging.getLogger(__name__)
# What infra/lib/images.py check_deployed_image accepts from the pipeline: a private-ECR image pinned by digest.
DIGEST_REFERENCE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]*@sha256:[0-9a-f]{64}$"
)


def image_from_definitions(path: Path) -> str:
    """The one ``imageUri`` of the build's ``imagedefinitions.json``; it must be pinned by digest."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot read imagedefinitions.json ({exc})") from exc
    uris = {e.get("imageUri") for e in entries if isinstance(e, dict)} if isinstance(entries, list) else set()
    if len(uris) != 1:
        raise ConfigurationError(
            f"{path}: expected a JSON list with one container's imageUri (the build writes one), got {entries!r}"
        )
    uri = uris.pop()
    if not isinstance(uri, str) or not DIGEST_REFERENCE.match(uri):
        raise ConfigurationError(
            f"{path}: imageUri {uri!r} is not <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<64 hex>; "
            "Pulumi refuses anything else as a deployed image"
        )
    return uri


def record_deployed_image(ssm: Any, *, stack: str, service: str, image: str, key_id: str) -> str:
    """Write ``image`` to the service's deployed-image parameter (SecureString on the stack key); its name."""
    if service not in SERVICES:
        raise ConfigurationError(f"--service {service!r}: allowed are {', '.join(SERVICES)}")
    if not stack:
        raise ConfigurationError("STACK_NAME is empty; the infra sets it on the release project")
    name = deployed_image_parameter(stack, service)
    try:
        ssm.put_parameter(Name=name, Value=image, Type="SecureString", KeyId=key_id, Overwrite=True)
    except Exception as exc:
        raise ReleaseError(
            f"{service} runs {image} but {name} could not be written ({exc}); the next `pulumi up` would roll "
            f"{service} back: write it by hand (docs/pipeline.md, 'Who owns the image')"
        ) from exc
    LOG.info("%s: deployed image %s recorded in %s", service, image, name)
    return name
