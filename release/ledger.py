"""The promotion ledger: one write-once record per promotion and rollback, and "what was live at time T".

Every entry is created with ``If-None-Match: *`` (S3 User Guide, "Add preconditions to S3 operations with
conditional requests"), so an entry is never replaced; the model bucket is versioned, and the release
role may only write ``ledger/*`` with that header (infra/pipeline/pipeline.py, S3 User Guide "Enforce conditional
writes on Amazon S3 buckets": the ``s3:if-none-match`` condition key). Keys start with the time the entry
went live (``contracts.bucket_layout.ledger_key``), so listing the prefix gives the history in order.

Who approved and what the evaluation said come from CodePipeline's own record of the execution
(``ListActionExecutions``: the approval action's ``updatedBy``/``lastUpdateTime``/summary, the Evaluate
action's output variables), not from anything the pipeline's inputs could claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.bucket_layout import LEDGER_PREFIX, ledger_key
from jobs_common.evaluation_contract import APPROVAL_STAGE, EVALUATE_STAGE, REPORT_URI, VERDICT
from model_package.registry import ReleaseRecord, parse_record
from release.errors import ReleaseStateError

LOG = logging.getLogger(__name__)
Event = Literal["promotion", "rollback"]


class LedgerEntry(BaseModel):
    """What prod runs from ``live_from`` on, and the evidence it got there with. docs/release-record.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: Event
    live_from: datetime
    pipeline_execution_id: str
    git_sha: str
    model_name: str
    model_version: int
    model_sha256: str
    image_uri: str
    image_digest: str
    release_key: str
    approved_by: str | None = None
    approved_at: datetime | None = None
    approval_comment: str | None = None
    evaluation_verdict: str | None = None
    evaluation_report: str | None = None
    recorded_by: str | None = None
    reason: str | None = None
    replaces: str | None = None  # ledger key of the entry that was live before this one

    @classmethod
    def from_release(cls, event: Event, key: str, record: ReleaseRecord, **evidence: Any) -> LedgerEntry:
        return cls(
            event=event, pipeline_execution_id=record.pipeline_execution_id, git_sha=record.git_sha,
            model_name=record.model_name, model_version=record.model_version, model_sha256=record.model_sha256,
            image_uri=record.image_uri, image_digest=record.image_digest, release_key=key, **evidence,
        )  # fmt: skip


@dataclass(frozen=True)
class PromotionEvidence:
    """The approval and the evaluation of one pipeline execution, as CodePipeline recorded them."""

    approved_by: str
    approved_at: datetime
    approval_comment: str | None
    evaluation_verdict: str | None
    evaluation_report: str | None

    def fields(self) -> dict[str, Any]:
        return {
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "approval_comment": self.approval_comment,
            "evaluation_verdict": self.evaluation_verdict,
            "evaluation_report": self.evaluation_report,
        }


class PipelineEvidenceReader:
    """``codepipeline:ListActionExecutions`` for one execution (CodePipeline API Reference)."""

    def __init__(self, codepipeline_client: Any, pipeline_name: str) -> None:
        self.client, self.pipeline_name = codepipeline_client, pipeline_name

    def read(self, execution_id: str) -> PromotionEvidence:
        details: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_action_executions")
        for page in paginator.paginate(pipelineName=self.pipeline_name, filter={"pipelineExecutionId": execution_id}):
            details.extend(page.get("actionExecutionDetails", []))

        def latest(stage: str) -> dict[str, Any] | None:
            done = [d for d in details if d.get("stageName") == stage and d.get("status") == "Succeeded"]
            return max(done, key=lambda d: d["lastUpdateTime"]) if done else None

        approval = latest(APPROVAL_STAGE)
        if approval is None or not approval.get("updatedBy"):
            raise ReleaseStateError(
                f"pipeline {self.pipeline_name} execution {execution_id} has no succeeded action in stage "
                f"{APPROVAL_STAGE} with an approver (ListActionExecutions); the ledger cannot say who approved"
            )
        evaluate = latest(EVALUATE_STAGE)
        variables = ((evaluate or {}).get("output") or {}).get("outputVariables") or {}
        if evaluate is None:
            LOG.warning("execution %s has no succeeded %s action: no evaluation in the ledger", execution_id,
                        EVALUATE_STAGE)  # fmt: skip
        summary = ((approval.get("output") or {}).get("executionResult") or {}).get("externalExecutionSummary")
        return PromotionEvidence(
            approved_by=approval["updatedBy"],
            approved_at=approval["lastUpdateTime"],
            approval_comment=summary,
            evaluation_verdict=variables.get(VERDICT),
            evaluation_report=variables.get(REPORT_URI),
        )


class Ledger:
    """Append and read the ledger in the model bucket (a ``release.releaser.ModelBucket``)."""

    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    def append(self, entry: LedgerEntry) -> str:
        key = ledger_key(entry.live_from, entry.event, entry.pipeline_execution_id)
        self.bucket.write_new(key, (entry.model_dump_json(indent=2) + "\n").encode())
        LOG.info("ledger: %s of %s v%d at %s (s3://%s/%s)", entry.event, entry.model_name, entry.model_version,
                 entry.live_from.isoformat(), self.bucket.bucket, key)  # fmt: skip
        return key

    def keys(self) -> list[str]:
        keys: list[str] = self.bucket.keys(LEDGER_PREFIX, ".json")
        return keys

    def entries(self) -> list[tuple[str, LedgerEntry]]:
        """Every entry in the order it went live."""
        out = [(key, parse_record(LedgerEntry, self.bucket.read(key), f"s3://{self.bucket.bucket}/{key}"))
               for key in self.keys()]  # fmt: skip
        return sorted(out, key=lambda pair: (pair[1].live_from, pair[0]))

    def live_at(self, at: datetime) -> tuple[str, LedgerEntry] | None:
        """The entry live at ``at``: the last one that went live at or before it; ``None`` before the first."""
        if at.tzinfo is None:
            raise ValueError(f"{at.isoformat()} has no time zone; give e.g. 2026-01-01T00:00:00+00:00")
        live = [pair for pair in self.entries() if pair[1].live_from <= at]
        return live[-1] if live else None

    def latest(self) -> tuple[str, LedgerEntry] | None:
        entries = self.entries()
        return entries[-1] if entries else None


def record_rollback(
    bucket: Any, release_key: str, *, reason: str, recorded_by: str, now: datetime
) -> tuple[str, LedgerEntry]:
    """Prod was put back on an earlier release (CodePipeline's stage rollback, or a redeploy of its image):
    append a ``rollback`` entry naming that release, and point ``champion.json`` back at its model, so the
    retrain gate and batch inference compare with, and use, what prod really runs again."""
    from contracts.bucket_layout import CHAMPION_KEY, versioned_model_key
    from model_package import PackageError, open_package
    from model_package.registry import ChampionPointer

    if not reason.strip():
        raise ReleaseStateError("a rollback needs a reason (--reason): the ledger says why prod went back")
    where = f"s3://{bucket.bucket}/{release_key}"
    record = parse_record(ReleaseRecord, bucket.read(release_key), where)
    ledger = Ledger(bucket)
    previous = ledger.latest()
    if previous is not None and previous[1].release_key == release_key:
        raise ReleaseStateError(f"{where} is already live per the ledger ({previous[0]}); nothing to roll back")
    package_key = versioned_model_key(record.model_version)
    try:
        package = open_package(bucket.read(package_key))
    except PackageError as exc:
        raise ReleaseStateError(f"s3://{bucket.bucket}/{package_key} is not a valid package: {exc}") from exc
    if package.sha256 != record.model_sha256:
        raise ReleaseStateError(
            f"s3://{bucket.bucket}/{package_key} has sha256 {package.sha256}; {where} released {record.model_sha256}"
        )
    entry = LedgerEntry.from_release(
        "rollback", release_key, record, live_from=now, recorded_by=recorded_by, reason=reason,
        replaces=previous[0] if previous else None,
    )  # fmt: skip
    key = ledger.append(entry)
    champion = ChampionPointer(
        model_name=record.model_name, model_version=record.model_version, package_key=package_key,
        model_sha256=record.model_sha256, release_key=release_key, updated_at=now,
    )  # fmt: skip
    bucket.write(CHAMPION_KEY, (champion.model_dump_json(indent=2) + "\n").encode())
    return key, entry
