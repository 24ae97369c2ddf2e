"""New Batch job definition revisions that run the newly built jobs image.

ECR tags are immutable and the schedules submit jobs by job definition *name*, which AWS Batch
resolves to the latest ACTIVE revision; so a new jobs image reaches the jobs only as a new
revision. The latest revision is copied field for field with only the image swapped, so the
infra's settings (resources, role, retries, timeout) carry over. Older revisions stay ACTIVE:
deregistering the newest one is the rollback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from release.errors import ConfigurationError, ReleaseStateError

LOG = logging.getLogger(__name__)
# AWS Batch: up to 128 letters (upper and lower case), numbers, hyphens and underscores.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Fields of a described revision that RegisterJobDefinition accepts unchanged.
_COPIED_FIELDS = (
    "type",
    "parameters",
    "schedulingPriority",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "platformCapabilities",
)


@dataclass(frozen=True)
class PlannedRevision:
    """The revision to register for one name, or ``None`` when the latest already runs the image."""

    name: str
    latest_arn: str
    request: dict[str, Any] | None


def parse_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    bad = [name for name in names if not _NAME.fullmatch(name)]
    if bad:
        raise ConfigurationError(
            f"JOB_DEFINITION_NAMES has invalid names {bad}; allowed: comma-separated names of letters, digits, '-', '_'"
        )
    return names


class JobDefinitionUpdater:
    def __init__(self, batch_client: Any) -> None:
        self.batch = batch_client

    def _latest(self, name: str) -> dict[str, Any]:
        revisions: list[dict[str, Any]] = []
        for page in self.batch.get_paginator("describe_job_definitions").paginate(
            jobDefinitionName=name, status="ACTIVE"
        ):
            revisions += page["jobDefinitions"]
        if not revisions:
            raise ReleaseStateError(f"Batch job definition {name!r} has no ACTIVE revision; the infra registers it")
        return max(revisions, key=lambda d: d["revision"])

    def plan(self, names: Sequence[str], pinned_image: str) -> list[PlannedRevision]:
        """Read every definition first, so a missing one fails the release before anything is written."""
        planned = []
        for name in names:
            latest = self._latest(name)
            container = latest.get("containerProperties")
            if not container:
                raise ReleaseStateError(
                    f"Batch job definition {latest['jobDefinitionArn']} has no containerProperties; "
                    "only single-container job definitions are supported"
                )
            if container.get("image") == pinned_image:
                planned.append(PlannedRevision(name, latest["jobDefinitionArn"], None))
                continue
            request = {k: latest[k] for k in _COPIED_FIELDS if latest.get(k) not in (None, {}, [])}
            request["jobDefinitionName"] = name
            request["containerProperties"] = {**container, "image": pinned_image}
            planned.append(PlannedRevision(name, latest["jobDefinitionArn"], request))
        return planned

    def apply(self, planned: Sequence[PlannedRevision]) -> list[str]:
        """Register the planned revisions; returns the ARN each name now resolves to."""
        arns = []
        for item in planned:
            if item.request is None:
                LOG.info("job definition %s already runs the image; no new revision", item.latest_arn)
                arns.append(item.latest_arn)
                continue
            arn = self.batch.register_job_definition(**item.request)["jobDefinitionArn"]
            LOG.info("registered %s (was %s)", arn, item.latest_arn)
            arns.append(arn)
        return arns
