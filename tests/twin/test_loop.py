"""The loop, end to end, as the plan deploys it (issue #12): one test, each stage printed with what it checked.

training data where the README says -> the retrain job container -> model.zip in the model bucket -> the
plan's S3 rule matches (its SQS probe) -> the plan's pipeline stages in order (Build runs buildspec.yml with
podman behind the docker shim; DeployStage/DeployProd run the new app image as the task definitions say
and wait for health; Approval approved; Release runs release/buildspec.yml) -> traffic to prod -> capture
objects -> the drift job container (from the job definition revision the release registered) writes its
report -> its alert reaches the topic's SQS probe -> release record, champion pointer, job definitions on
the new jobs image.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contracts.bucket_layout import CHAMPION_KEY, RELEASES_PREFIX
from release.contracts import deployed_image_parameter
from tests.twin.conftest import churn_frame, records_of, say, shell
from twin.containers import JobResult, run_job
from twin.pipeline import new_run
from twin.session import Twin

# buildspec.yml's `make test` is the README's whole suite; CI runs it as its own step right before
# `make e2e` (.ci/run). The Build skips the suite for a git sha that already passed it (a record in the
# artifact bucket, release/test_record.py), so the twin records CI's pass for this commit, as a passing
# earlier build would have, and the real buildspec takes its own skip path. TWIN_RUN_MAKE_TEST=1 runs it.
RECORD_CI_TEST_PASS = os.environ.get("TWIN_RUN_MAKE_TEST") != "1"


class Clock:
    """Prints each stage with its time and what it checked."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stages: list[tuple[str, float]] = []

    def stage(self, name: str, work: Callable[[], list[str]]) -> None:
        began = time.monotonic()
        checked = work()
        seconds = time.monotonic() - began
        self.stages.append((name, seconds))
        say(f"[loop] {name}: {seconds:.1f}s")
        for line in checked:
            say(f"    checked: {line}")


def _rule_probe(twin: Twin, source: str) -> Any:
    for probe in twin.resources.rules.values():
        if probe.pattern and source in json.dumps(probe.pattern.get("source", [])):
            return probe
    raise AssertionError(f"the plan has no EventBridge rule on source {source}: {list(twin.resources.rules)}")


def _job_props(twin: Twin, name: str) -> dict[str, Any]:
    return twin.resources.resolve(twin.plan.job_definition(name)["containerProperties"])


def _latest_revision(twin: Twin, name: str) -> dict[str, Any]:
    batch = twin.aws.client("batch")
    found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    assert found, f"no ACTIVE revision of {name}"
    return max(found, key=lambda d: d["revision"])


def _job(twin: Twin, name: str, props: dict[str, Any], **kwargs: Any) -> JobResult:
    timeout = twin.plan.job_definition(name).get("timeout", {}).get("attemptDurationSeconds")
    result = run_job(
        props, twin.aws, twin.registry.address, label=name.rsplit("-", 1)[-1], timeout_seconds=timeout, **kwargs
    )
    assert result.exit_code == 0, f"{name} exited {result.exit_code}:\n{result.logs}"
    return result


def _keys(twin: Twin, bucket: str, prefix: str) -> list[str]:
    reply = twin.aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in reply.get("Contents", [])]


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not seen within {timeout:.0f}s")


@pytest.mark.slow
def test_the_loop_as_deployed(twin: Twin, workspace: Path, tmp_path: Path) -> None:
    clock = Clock()
    plan, s3 = twin.plan, twin.aws.client("s3")
    models = plan.outputs["modelBucket"]
    model_key = plan.outputs["modelObjectKey"]
    names = plan.outputs["jobDefinitionNames"]
    jobs_repo = plan.outputs["jobsRepositoryUrl"]
    state: dict[str, Any] = {}

    def training_data() -> list[str]:
        # README: "Put training data under s3://<modelBucket>/training-data/".
        frame = churn_frame(3000, seed=0)
        s3.put_object(Bucket=models, Key="training-data/churn.csv", Body=frame.to_csv(index=False).encode())
        return [f"s3://{models}/training-data/churn.csv ({len(frame)} rows)"]

    def first_jobs_image() -> list[str]:
        # The plan's job definitions name a :bootstrap tag until the first release; the twin plays the
        # operator and builds the jobs image once so the first retrain can run (the Build rebuilds it
        # from the same Dockerfile and context: podman's layer cache answers).
        uri = f"{jobs_repo}:twin-first"
        shell(twin, f"docker build -q --file docker/jobs.Dockerfile --tag {uri} . && docker push {uri}", workspace)
        state["first_jobs"] = uri
        return [f"jobs image {uri} built from docker/jobs.Dockerfile and pushed"]

    def retrain() -> list[str]:
        props = _job_props(twin, names["retrain"])
        result = _job(twin, names["retrain"], props, image=state["first_jobs"])
        head = s3.head_object(Bucket=models, Key=model_key)
        state["model_version_id"] = head.get("VersionId")
        return [
            f"{names['retrain']}: the plan's command {props['command']} and env, exit 0 in {result.seconds:.0f}s",
            f"s3://{models}/{model_key} version {head.get('VersionId')} ({head['ContentLength']} bytes)",
        ]

    def s3_rule() -> list[str]:
        probe = _rule_probe(twin, "aws.s3")
        message = twin.resources.wait_for(
            probe.queue_url, lambda m: m.get("detail", {}).get("object", {}).get("key") == model_key, 60
        )
        return [f"rule {probe.rule_name} matched {message['detail-type']} for {model_key} (its SQS probe)"]

    if RECORD_CI_TEST_PASS:
        from datetime import UTC, datetime

        from release.test_record import TestRecords
        from twin.session import git_sha

        TestRecords(s3, plan.outputs["artifactBucket"]).write(git_sha(twin.repo), at=datetime.now(UTC), build_id="ci")
    # The twin does not play CodePipeline's execution history (moto has no ListActionExecutions), so the
    # Release runs without the approval lookup: its ledger entry names no approver (docs/twin.md).
    run = new_run(twin, log=lambda line: say(f"[loop]   {line}"), environment_overrides={"PIPELINE_NAME": ""})

    def pipeline() -> list[str]:
        results = run.run()
        finished = results[-1]
        assert (finished.stage, finished.action) == ("(execution)", "SUCCEEDED"), finished
        assert finished.checked != ["matched []"], "no rule of the plan saw the execution finish"
        # Issue #16: the Evaluate stage runs on the deployed stage service, before anyone is asked to approve.
        ran = [r.stage for r in results if not r.stage.startswith("(")]
        assert ran.index("DeployStage") < ran.index("Evaluate") < ran.index("Approval") < ran.index("DeployProd"), ran
        return [
            f"{r.stage}/{r.action} {r.seconds:.0f}s {r.checked[0] if r.stage.startswith('(') else ''}" for r in results
        ]

    def traffic() -> list[str]:
        prod = run.services[
            next(s for s in plan.pipeline()["stages"] if s["name"] == "DeployProd")["actions"][0]["configuration"][
                "ServiceName"
            ]
        ]
        # Shifted traffic (monthly_spend +40): the drift job has something to report and alert on.
        frame = churn_frame(600, seed=11, monthly_spend=40.0)
        records = records_of(frame, 600)
        drift = _job_props(twin, names["drift"])
        env = {e["name"]: e["value"] for e in drift["environment"]}
        before = set(_keys(twin, env["CAPTURE_BUCKET"], env["CAPTURE_PREFIX"]))
        for start in range(0, len(records), 100):
            request = urllib.request.Request(
                f"{prod.url}/predict",
                data=json.dumps(records[start : start + 100]).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert len(json.loads(reply.read())["predictions"]) == 100
        keys = _wait(
            lambda: set(_keys(twin, env["CAPTURE_BUCKET"], env["CAPTURE_PREFIX"])) - before, 90, "new capture objects"
        )
        return [
            f"600 records to prod {prod.url}/predict",
            f"{len(keys)} capture object(s) under s3://{env['CAPTURE_BUCKET']}/{env['CAPTURE_PREFIX']}",
        ]

    def drift_job() -> list[str]:
        latest = _latest_revision(twin, names["drift"])
        props = twin.resources.resolve(latest["containerProperties"])
        topic = next(iter(twin.resources.topics.values()))
        twin.resources.drain(topic.queue_url)
        result = _job(twin, names["drift"], props)
        env = {e["name"]: e["value"] for e in props["environment"]}
        reports = _keys(twin, models, env["REPORT_PREFIX"])
        assert reports, f"no drift report under {env['REPORT_PREFIX']}:\n{result.logs}"
        alert = twin.resources.wait_for(topic.queue_url, lambda m: "drift" in json.dumps(m).lower(), 60)
        return [f"{names['drift']} revision {latest['revision']} ({props['image']}) exited 0 in {result.seconds:.0f}s",
                f"reports: {reports[:3]}",
                f"alert on {topic.topic_arn}: {str(alert.get('Subject') or alert.get('Message'))[:120]}"]  # fmt: skip

    def release_state() -> list[str]:
        build = json.loads((run.artifacts["BuildRecord"] / "build-record.json").read_text())
        champion = json.loads(s3.get_object(Bucket=models, Key=CHAMPION_KEY)["Body"].read())
        assert (champion["model_version"], champion["model_sha256"]) == (build["model_version"], build["model_sha256"])
        records = _keys(twin, models, RELEASES_PREFIX)
        assert champion["release_key"] in records, (champion, records)
        record = json.loads(s3.get_object(Bucket=models, Key=champion["release_key"])["Body"].read())
        assert build["git_sha"] in json.dumps(record)
        pinned = f"{jobs_repo}@{build['jobs_image_digest']}"
        lines = [f"champion: {CHAMPION_KEY} -> v{champion['model_version']} ({champion['package_key']})",
                 f"release record {champion['release_key']} names git {build['git_sha'][:12]}"]  # fmt: skip
        for name in names.values():
            image = _latest_revision(twin, name)["containerProperties"]["image"]
            assert image == pinned, f"{name} runs {image}, not the new jobs image {pinned}"
            lines.append(f"{name} latest revision -> {image}")
        # What runs now, for the next `pulumi up` (docs/pipeline.md, "Who owns the image").
        app_pinned = f"{plan.outputs['appRepositoryUrl']}@{build['app_image_digest']}"
        ssm, ecr = twin.aws.client("ssm"), twin.aws.client("ecr")
        for service in ("stage", "prod"):
            name = deployed_image_parameter("dev", service)
            value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            assert value == app_pinned, f"{name} holds {value}, not {app_pinned}"
            lines.append(f"{name} -> {value}")
        app_repo = plan.outputs["appRepositoryUrl"]
        for uri, digest, keep in ((app_repo, build["app_image_digest"], {"keep-stage", "keep-prod"}),
                                  (jobs_repo, build["jobs_image_digest"], {"keep-batch"})):  # fmt: skip
            ids = ecr.describe_images(repositoryName=uri.split("/", 1)[1], imageIds=[{"imageDigest": digest}])
            tags = set(ids["imageDetails"][0].get("imageTags", []))
            assert keep <= tags and any(t.startswith("release-") for t in tags), f"{uri}@{digest} tags {tags}"
            lines.append(f"{uri}@{digest[:19]} tags {sorted(tags)}")
        return lines

    try:
        clock.stage("training data where the README says", training_data)
        clock.stage("first jobs image", first_jobs_image)
        clock.stage("retrain job container", retrain)
        clock.stage("S3 rule on model.zip", s3_rule)
        clock.stage("pipeline (plan's stages in order)", pipeline)
        clock.stage("traffic to prod and capture", traffic)
        clock.stage("drift job and alert", drift_job)
        clock.stage("release record, champion, job definitions", release_state)
    finally:
        run.stop()
    say(
        f"[loop] done in {time.monotonic() - clock.started:.0f}s: "
        + ", ".join(f"{n} {s:.0f}s" for n, s in clock.stages)
    )
