"""Enable the job schedules at release: ``pulumi up`` creates them DISABLED (issue #12, defect 5).

Until the first release the Batch job definitions name the ``:bootstrap`` jobs image tag, which does not
exist, so a schedule that fired would only produce failed jobs (the summary alone ~144 a day). The infra
therefore creates every schedule DISABLED and ignores later changes of its state; the Release step, once
the job definitions run the built jobs image, enables them. Later releases find them enabled and change
nothing; a schedule an operator disabled on purpose after that is re-enabled by the next release, which
docs/jobs-infra.md says (pause a job by setting its schedule to DISABLED between releases).

EventBridge Scheduler's UpdateSchedule replaces the whole schedule (Scheduler API Reference,
"UpdateSchedule": unspecified optional fields are reset), so the request copies every field GetSchedule
returned and changes only ``State``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from release.errors import ConfigurationError, ReleaseStateError

LOG = logging.getLogger(__name__)
# Scheduler: group and schedule names are 1-64 of letters, digits, '.', '-', '_'.
_PART = r"[0-9A-Za-z_.-]{1,64}"
_REF = re.compile(rf"(?P<group>{_PART})/(?P<name>{_PART})")
# Fields of GetSchedule's answer that UpdateSchedule takes back unchanged.
_COPIED_FIELDS = (
    "ActionAfterCompletion",
    "Description",
    "EndDate",
    "FlexibleTimeWindow",
    "KmsKeyArn",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "Target",
)


@dataclass(frozen=True)
class ScheduleRef:
    group: str
    name: str

    def __str__(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass(frozen=True)
class PlannedSchedule:
    """The UpdateSchedule request for one schedule, or ``None`` when it is already enabled."""

    ref: ScheduleRef
    request: dict[str, Any] | None


def parse_schedule_names(value: str) -> list[ScheduleRef]:
    """``SCHEDULE_NAMES``: comma-separated ``<group>/<name>``; empty means no schedules to enable."""
    refs, bad = [], []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        match = _REF.fullmatch(item)
        if match is None:
            bad.append(item)
        else:
            refs.append(ScheduleRef(match["group"], match["name"]))
    if bad:
        raise ConfigurationError(
            f"SCHEDULE_NAMES has invalid entries {bad}; allowed: comma-separated <group>/<name> of EventBridge "
            "Scheduler schedules (letters, digits, '.', '-', '_')"
        )
    return refs


class ScheduleEnabler:
    def __init__(self, scheduler_client: Any) -> None:
        self.scheduler = scheduler_client

    def plan(self, refs: Sequence[ScheduleRef]) -> list[PlannedSchedule]:
        """Read every schedule first, so a missing one fails the release before anything is written."""
        planned = []
        for ref in refs:
            try:
                current = self.scheduler.get_schedule(Name=ref.name, GroupName=ref.group)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise ReleaseStateError(
                        f"EventBridge Scheduler schedule {ref} does not exist; the infra creates it "
                        "(SCHEDULE_NAMES of the Release action names it)"
                    ) from exc
                raise
            if current.get("State") == "ENABLED":
                planned.append(PlannedSchedule(ref, None))
                continue
            request = {k: current[k] for k in _COPIED_FIELDS if current.get(k) not in (None, "", {}, [])}
            request.update(Name=ref.name, GroupName=ref.group, State="ENABLED")
            planned.append(PlannedSchedule(ref, request))
        return planned

    def apply(self, planned: Sequence[PlannedSchedule]) -> list[str]:
        """Enable the planned schedules; returns the ``<group>/<name>`` of each one now enabled."""
        enabled = []
        for item in planned:
            if item.request is None:
                LOG.info("schedule %s is already enabled", item.ref)
            else:
                self.scheduler.update_schedule(**item.request)
                LOG.info("enabled schedule %s: its job definition now runs the released jobs image", item.ref)
            enabled.append(str(item.ref))
        return enabled
