"""``imagedefinitions.json``: the file CodePipeline's ECS deploy action reads to swap the task's image.

Format (ECS standard deployment): a JSON list of ``{"name": <container name>, "imageUri": <image>}``.
The image is named by digest, so the stage and prod deploys run the very bytes that were tested.
"""

from __future__ import annotations

import json
import os
import re

from model_package import write_atomically
from release.errors import ConfigurationError

CONTAINER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$"
PINNED_IMAGE_PATTERN = r"^[a-z0-9][a-z0-9.-]*(?::[0-9]+)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*@sha256:[0-9a-f]{64}$"


def image_definitions(container_name: str, pinned_image: str) -> list[dict[str, str]]:
    if not re.fullmatch(CONTAINER_NAME_PATTERN, container_name):
        raise ConfigurationError(
            f"container name {container_name!r} is not a valid ECS container name (letters, digits, '-', '_'); "
            "it must equal the infra's ml-delivery:containerName"
        )
    if not re.fullmatch(PINNED_IMAGE_PATTERN, pinned_image):
        raise ConfigurationError(
            f"image {pinned_image!r} is not '<repository uri>@sha256:<64 hex>'; deploys are pinned"
        )
    return [{"name": container_name, "imageUri": pinned_image}]


def write_image_definitions(path: str | os.PathLike[str], container_name: str, pinned_image: str) -> None:
    body = json.dumps(image_definitions(container_name, pinned_image), indent=2) + "\n"
    write_atomically(path, body.encode())
