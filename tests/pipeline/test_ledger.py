"""The promotion ledger against moto: every release appends a write-once entry with who approved (from
CodePipeline's ListActionExecutions, answered by a botocore Stubber that checks request and response against
the real API model) and the evaluation verdict; a rollback appends its own entry and moves the champion back;
``history --at T`` answers what was live in prod at T."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from contracts.bucket_layout import LEDGER_PREFIX, versioned_model_key
from contracts.environment import ReleaseEnvironment
from contracts.exit_codes import ExitCode
from model_package import open_package
from model_package.registry import read_champion
from release.__main__ import main
from release.build_record import BuildRecord, build_record
from release.errors import ReleaseStateError
from release.job_definitions import JobDefinitionUpdater
from release.ledger import Ledger, LedgerEntry, PipelineEvidenceReader, record_rollback
from release.releaser import ModelBucket, Releaser
from tests.pipeline import packages

GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
T1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
APPROVER = "arn:aws:sts::123456789012:assumed-role/release-managers/alice"
PIPELINE = "ml-delivery-dev"


class Bucket:
    """A fresh versioned model bucket on the moto server, with helpers to stage one build per version."""

    def __init__(self, s3: Any, name: str) -> None:
        self.s3, self.name = s3, name
        self.model_bucket = ModelBucket(s3, name)

    def stage(self, version: int) -> BuildRecord:
        """What retrain and Build leave behind for ``version``: model.zip, its archive, a build record."""
        package = packages.make_package(version, git_sha=GIT_SHA)
        version_id = self.s3.put_object(Bucket=self.name, Key="model.zip", Body=package)["VersionId"]
        self.s3.put_object(Bucket=self.name, Key=versioned_model_key(version), Body=package)
        return build_record(
            git_sha=GIT_SHA, model_name="churn", model_version=version, model_sha256=open_package(package).sha256,
            model_s3_version_id=version_id, app_image_uri=f"{REGISTRY}/app:{GIT_SHA}-m{version}",
            app_image_digest="sha256:" + f"{version:x}" * 64, jobs_image_uri=f"{REGISTRY}/jobs:{GIT_SHA}",
            jobs_image_digest="sha256:" + "b" * 64, built_at=T1,
        )  # fmt: skip


@pytest.fixture
def bucket(moto_server: Any) -> Bucket:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url)
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(s3, name)


def _action(stage: str, name: str, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"pipelineExecutionId": "x", "actionExecutionId": uuid.uuid4().hex, "stageName": stage,
            "actionName": name, "status": status, "startTime": at - timedelta(minutes=5), "lastUpdateTime": at,
            **extra}  # fmt: skip


def evidence_reader(execution: str, details: list[dict[str, Any]]) -> tuple[PipelineEvidenceReader, Stubber]:
    client = boto3.client("codepipeline", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response(
        "list_action_executions",
        {"actionExecutionDetails": [{**d, "pipelineExecutionId": execution} for d in details]},
        {"pipelineName": PIPELINE, "filter": {"pipelineExecutionId": execution}},
    )
    stubber.activate()
    return PipelineEvidenceReader(client, PIPELINE), stubber


def approved_execution(execution: str, at: datetime, verdict: str = "pass") -> PipelineEvidenceReader:
    report = f"s3://models/reports/evaluation/{execution}/report.html"
    reader, _ = evidence_reader(execution, [
        _action("Evaluate", "EvaluateCandidate", "Succeeded", at - timedelta(minutes=30),
                output={"outputVariables": {"EVAL_VERDICT": verdict, "EVAL_REPORT_URI": report}}),
        # A rejected first attempt (SUPERSEDED mode re-runs), then the approval that counted.
        _action("Approval", "ApproveProd", "Failed", at - timedelta(minutes=20), updatedBy="arn:aws:iam::1:user/bob"),
        _action("Approval", "ApproveProd", "Succeeded", at - timedelta(minutes=10), updatedBy=APPROVER,
                output={"executionResult": {"externalExecutionSummary": "report read, segments fine"}}),
    ])  # fmt: skip
    return reader


def release(bucket: Bucket, version: int, at: datetime, execution: str) -> Any:
    releaser = Releaser(
        bucket.model_bucket, JobDefinitionUpdater(boto3.client("batch", region_name="us-east-1")),
        model_key="model.zip", clock=lambda: at, evidence=approved_execution(execution, at).read,
    )  # fmt: skip
    return releaser.release(bucket.stage(version), pipeline_execution_id=execution, job_definition_names=[])


def test_a_release_appends_who_approved_when_digest_version_and_evaluation(bucket: Bucket) -> None:
    outcome = release(bucket, 3, T1, "exec-3")
    assert outcome.ledger_key is not None and outcome.ledger_key.startswith(f"{LEDGER_PREFIX}20260301T120000")
    body = bucket.s3.get_object(Bucket=bucket.name, Key=outcome.ledger_key)["Body"].read()
    entry = LedgerEntry.model_validate_json(body)
    assert entry.event == "promotion" and entry.live_from == T1
    assert entry.approved_by == APPROVER  # the approval that succeeded, not the rejected one
    assert entry.approved_at == T1 - timedelta(minutes=10)
    assert entry.approval_comment == "report read, segments fine"
    assert (entry.model_version, entry.image_digest) == (3, "sha256:" + "3" * 64)
    assert entry.evaluation_verdict == "pass"
    assert entry.evaluation_report == "s3://models/reports/evaluation/exec-3/report.html"
    assert entry.release_key == outcome.record_key and entry.replaces is None


def test_entries_are_write_once(bucket: Bucket) -> None:
    outcome = release(bucket, 3, T1, "exec-3")
    entry = Ledger(bucket.model_bucket).entries()[0][1]
    with pytest.raises(ReleaseStateError, match="already exists; it is never replaced"):
        Ledger(bucket.model_bucket).append(entry)
    # The raw API refuses too: If-None-Match on an existing key is a precondition failure.
    with pytest.raises(ClientError, match="PreconditionFailed"):
        bucket.s3.put_object(Bucket=bucket.name, Key=outcome.ledger_key, Body=b"{}", IfNoneMatch="*")


def test_no_succeeded_approval_stops_the_release_before_any_write(bucket: Bucket) -> None:
    reader, _ = evidence_reader("exec-9", [_action("Approval", "ApproveProd", "Failed", T1, updatedBy=APPROVER)])
    releaser = Releaser(bucket.model_bucket, JobDefinitionUpdater(boto3.client("batch", region_name="us-east-1")),
                        model_key="model.zip", clock=lambda: T1, evidence=reader.read)  # fmt: skip
    build = bucket.stage(3)
    with pytest.raises(ReleaseStateError, match="no succeeded action in stage Approval"):
        releaser.release(build, pipeline_execution_id="exec-9", job_definition_names=[])
    assert Ledger(bucket.model_bucket).keys() == []
    assert read_champion(bucket.s3, bucket.name) is None


def test_history_answers_what_was_live_at_any_time_including_after_a_rollback(bucket: Bucket) -> None:
    first = release(bucket, 3, T1, "exec-3")
    second = release(bucket, 4, T1 + timedelta(days=1), "exec-4")
    back_at = T1 + timedelta(days=1, hours=2)
    rollback_key, rollback = record_rollback(bucket.model_bucket, first.record_key, reason="p99 up after v4",
                                             recorded_by=APPROVER, now=back_at)  # fmt: skip
    release(bucket, 5, T1 + timedelta(days=3), "exec-5")
    ledger = Ledger(bucket.model_bucket)

    def version_at(at: datetime) -> int | None:
        found = ledger.live_at(at)
        return None if found is None else found[1].model_version

    assert version_at(T1 - timedelta(seconds=1)) is None
    assert version_at(T1) == 3
    assert version_at(T1 + timedelta(hours=23)) == 3
    assert version_at(T1 + timedelta(days=1, hours=1)) == 4
    assert version_at(back_at + timedelta(minutes=1)) == 3  # rolled back
    assert version_at(T1 + timedelta(days=5)) == 5
    assert rollback.event == "rollback" and rollback.reason == "p99 up after v4"
    assert rollback.replaces == second.ledger_key
    assert [e.event for _k, e in ledger.entries()] == ["promotion", "promotion", "rollback", "promotion"]
    assert ledger.entries()[2][0] == rollback_key
    assert ledger.entries()[3][1].replaces == rollback_key
    with pytest.raises(ValueError, match="no time zone"):
        ledger.live_at(datetime(2026, 3, 1))


def test_rollback_moves_the_champion_back_and_refuses_a_no_op(bucket: Bucket) -> None:
    first = release(bucket, 3, T1, "exec-3")
    release(bucket, 4, T1 + timedelta(days=1), "exec-4")
    assert read_champion(bucket.s3, bucket.name).model_version == 4
    record_rollback(bucket.model_bucket, first.record_key, reason="bad canary", recorded_by=APPROVER,
                    now=T1 + timedelta(days=2))  # fmt: skip
    champion = read_champion(bucket.s3, bucket.name)
    assert (champion.model_version, champion.release_key) == (3, first.record_key)
    with pytest.raises(ReleaseStateError, match="already live"):
        record_rollback(bucket.model_bucket, first.record_key, reason="again", recorded_by=APPROVER,
                        now=T1 + timedelta(days=3))  # fmt: skip
    with pytest.raises(ReleaseStateError, match="needs a reason"):
        record_rollback(bucket.model_bucket, first.record_key, reason=" ", recorded_by=APPROVER, now=T1)


def test_history_cli_prints_the_entry_live_at_t(
    bucket: Bucket, moto_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release(bucket, 3, T1, "exec-3")
    release(bucket, 4, T1 + timedelta(days=1), "exec-4")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    assert main(["history", "--bucket", bucket.name, "--at", "2026-03-02T06:00:00+00:00"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["live"]["model_version"] == 3 and answer["live"]["approved_by"] == APPROVER
    assert main(["history", "--bucket", bucket.name, "--at", "2026-02-01T00:00:00+00:00"]) == 0
    assert json.loads(capsys.readouterr().out)["live"] is None
    assert main(["history", "--bucket", bucket.name]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["model_version"] for line in lines] == [3, 4]
    with pytest.raises(SystemExit):
        main(["history", "--bucket", bucket.name, "--at", "2026-03-02T06:00:00"])  # no zone: argparse error


def test_history_cli_reads_the_bucket_from_model_bucket_through_the_release_contract(
    bucket: Bucket, moto_server: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --bucket the CLI falls back to MODEL_BUCKET, read through ReleaseEnvironment (issue #15 item 2)."""
    release(bucket, 3, T1, "exec-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv(ReleaseEnvironment.variable("model_bucket"), f" {bucket.name} ")
    assert main(["history"]) == 0
    assert [json.loads(line)["model_version"] for line in capsys.readouterr().out.splitlines()] == [3]
    monkeypatch.delenv("MODEL_BUCKET")
    assert main(["history"]) == ExitCode.CONFIG  # neither given: the configuration error names both


def test_test_record_names_the_codebuild_build_it_came_from(
    bucket: Bucket, moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CODEBUILD_BUILD_ID (CodeBuild's own variable) is read through ReleaseEnvironment into the record."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv(ReleaseEnvironment.variable("codebuild_build_id"), "ml-delivery-test:1234")
    assert main(["test-record", "write", "--bucket", bucket.name, "--git-sha", GIT_SHA]) == 0
    [record] = [o["Key"] for o in bucket.s3.list_objects_v2(Bucket=bucket.name)["Contents"]]
    body = json.loads(bucket.s3.get_object(Bucket=bucket.name, Key=record)["Body"].read())
    assert body["build_id"] == "ml-delivery-test:1234" and body["git_sha"] == GIT_SHA


class _FailOnce:
    """A model bucket whose first write of a ledger key fails, as if the Release action died right after
    writing the release record (the retry must finish the job with the record it already wrote)."""

    def __init__(self, inner: ModelBucket) -> None:
        self.inner, self.failed = inner, False
        self.s3, self.bucket = inner.s3, inner.bucket

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_new(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        if key.startswith(LEDGER_PREFIX) and not self.failed:
            self.failed = True
            raise ConnectionError("the action's container was stopped")
        self.inner.write_new(key, body, content_type)


def _releaser(model_bucket: Any, at: datetime, execution: str) -> Releaser:
    return Releaser(
        model_bucket, JobDefinitionUpdater(boto3.client("batch", region_name="us-east-1")),
        model_key="model.zip", clock=lambda: at, evidence=approved_execution(execution, at).read,
    )  # fmt: skip


def _history_keys(bucket: Bucket) -> tuple[list[str], list[str]]:
    listing = bucket.s3.list_objects_v2(Bucket=bucket.name).get("Contents", [])
    keys = sorted(o["Key"] for o in listing)
    return [k for k in keys if k.startswith("releases/")], [k for k in keys if k.startswith(LEDGER_PREFIX)]


@pytest.mark.parametrize("retry_after", [timedelta(0), timedelta(seconds=0.4), timedelta(minutes=7)])
def test_a_retried_release_of_the_same_execution_writes_no_second_record(
    bucket: Bucket, retry_after: timedelta
) -> None:
    """CodePipeline retries a failed action (RetryStageExecution) and the Release step must be safe to run
    again: in the same second it used to fail on its own write-once record (CI, 2026-12-01), a minute later
    it used to append a second record and a second 'promotion' for one execution."""
    build = bucket.stage(3)
    first = _releaser(bucket.model_bucket, T1, "exec-3").release(
        build, pipeline_execution_id="exec-3", job_definition_names=[]
    )
    again = _releaser(bucket.model_bucket, T1 + retry_after, "exec-3").release(
        build, pipeline_execution_id="exec-3", job_definition_names=[]
    )
    assert again.record_key == first.record_key and again.ledger_key == first.ledger_key
    assert _history_keys(bucket) == ([first.record_key], [first.ledger_key])
    champion = read_champion(bucket.s3, bucket.name)
    assert champion is not None and champion.release_key == first.record_key and champion.updated_at == T1
    [(_key, entry)] = Ledger(bucket.model_bucket).entries()
    assert entry.replaces is None, "a retry never names itself as what it replaced"


def test_a_release_that_died_after_its_record_finishes_on_retry_with_that_record(bucket: Bucket) -> None:
    build = bucket.stage(3)
    flaky = _FailOnce(bucket.model_bucket)
    with pytest.raises(ConnectionError):
        _releaser(flaky, T1, "exec-3").release(build, pipeline_execution_id="exec-3", job_definition_names=[])
    [record_key], ledger_keys = _history_keys(bucket)
    assert ledger_keys == []
    again = _releaser(bucket.model_bucket, T1 + timedelta(minutes=3), "exec-3").release(
        build, pipeline_execution_id="exec-3", job_definition_names=[]
    )
    assert again.record_key == record_key
    assert _history_keys(bucket) == ([record_key], [again.ledger_key])
    [(_key, entry)] = Ledger(bucket.model_bucket).entries()
    assert entry.live_from == T1 and entry.release_key == record_key, "live from when the record says"


def test_one_execution_cannot_release_two_different_builds(bucket: Bucket) -> None:
    _releaser(bucket.model_bucket, T1, "exec-3").release(
        bucket.stage(3), pipeline_execution_id="exec-3", job_definition_names=[]
    )
    other = bucket.stage(4)
    with pytest.raises(ReleaseStateError, match=r"execution exec-3 already released .*version 3.*not version 4"):
        _releaser(bucket.model_bucket, T1 + timedelta(minutes=1), "exec-3").release(
            other, pipeline_execution_id="exec-3", job_definition_names=[]
        )
    assert len(_history_keys(bucket)[0]) == 1
    assert read_champion(bucket.s3, bucket.name).model_version == 3


def test_a_retry_after_a_later_release_went_live_changes_nothing(bucket: Bucket) -> None:
    build = bucket.stage(3)
    _releaser(bucket.model_bucket, T1, "exec-3").release(build, pipeline_execution_id="exec-3", job_definition_names=[])
    release(bucket, 4, T1 + timedelta(days=1), "exec-4")
    before = _history_keys(bucket)
    with pytest.raises(ReleaseStateError, match=r"exec-3 was released .* and later .* went live"):
        _releaser(bucket.model_bucket, T1 + timedelta(days=2), "exec-3").release(
            build, pipeline_execution_id="exec-3", job_definition_names=[]
        )
    assert _history_keys(bucket) == before
    assert read_champion(bucket.s3, bucket.name).model_version == 4
