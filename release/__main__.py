"""``python -m release``: the commands the two buildspecs run. ``--help`` on each lists its arguments.

Exit status (``contracts.exit_codes.ExitCode``, docs/exit-codes.md): 0 done; 2-6 a model package
error; 8, 10, 11, 12 ``release.errors``; 64 usage; 1 anything unexpected (a bug or an AWS outage), with
the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.exit_codes import ExitCode, UsageArgumentParser
from jobs_common.cli import run_command
from release.errors import ConfigurationError

if TYPE_CHECKING:
    from release.settings import ReleaseSettings

LOG = logging.getLogger("release")


def _model_info(args: argparse.Namespace) -> int:
    from release.model_info import ModelIdentity

    sys.stdout.write(ModelIdentity.from_package(args.model_dir).shell_exports())
    return ExitCode.OK


def _image_digest(args: argparse.Namespace) -> int:
    import boto3

    from release.images import EcrImageLookup, TaggedImage

    image = TaggedImage.parse(args.image)
    lookup = EcrImageLookup(boto3.client("ecr"))
    digest = lookup.digest(image) if args.missing_ok else lookup.require_digest(image)
    print(digest or "")
    return ExitCode.OK


def _imagedefinitions(args: argparse.Namespace) -> int:
    from release.imagedefinitions import write_image_definitions

    write_image_definitions(args.out, args.container_name, args.image)
    LOG.info("wrote %s: container %s -> %s", args.out, args.container_name, args.image)
    return ExitCode.OK


def _build_record(args: argparse.Namespace) -> int:
    from release.build_record import BuildRecordWriter, build_record
    from release.model_info import ModelIdentity

    model = ModelIdentity.from_package(args.model_dir)
    record = build_record(
        git_sha=args.git_sha,
        model_name=model.name,
        model_version=model.version,
        model_sha256=model.sha256,
        model_s3_version_id=args.model_s3_version_id,
        app_image_uri=args.app_image,
        app_image_digest=args.app_image_digest,
        jobs_image_uri=args.jobs_image,
        jobs_image_digest=args.jobs_image_digest,
        built_at=args.built_at or datetime.now(UTC),
    )
    BuildRecordWriter().write(args.out, record)
    LOG.info("wrote build record %s", args.out)
    return ExitCode.OK


def _record(args: argparse.Namespace) -> int:
    import boto3

    from release.build_record import BuildRecordReader
    from release.job_definitions import JobDefinitionUpdater
    from release.ledger import PipelineEvidenceReader
    from release.releaser import ModelBucket, Releaser
    from release.schedules import ScheduleEnabler
    from release.settings import ReleaseSettings

    settings = ReleaseSettings.from_env()
    s3 = boto3.client("s3")
    try:
        build = BuildRecordReader().read(args.build_record)
        releaser = Releaser(
            ModelBucket(s3, settings.model_bucket),
            JobDefinitionUpdater(boto3.client("batch")),
            model_key=settings.model_key,
            schedules=ScheduleEnabler(boto3.client("scheduler")) if settings.schedule_names else None,
            evidence=PipelineEvidenceReader(boto3.client("codepipeline"), settings.pipeline_name).read
            if settings.pipeline_name
            else None,
        )
        outcome = releaser.release(
            build,
            pipeline_execution_id=settings.pipeline_execution_id,
            job_definition_names=settings.job_definition_names,
            schedule_names=settings.schedule_names,
        )
    except Exception as exc:  # every failure after the prod deploy is worth a page, expected or not
        _alert_release_failed(settings, s3, exc)
        raise
    print(f"s3://{settings.model_bucket}/{outcome.record_key}")
    return ExitCode.OK


def _model_bucket(args: argparse.Namespace) -> Any:
    import boto3

    from contracts.environment import ReleaseEnvironment
    from release.releaser import ModelBucket

    bucket = args.bucket or ReleaseEnvironment.from_env(error=ConfigurationError).model_bucket.strip()
    if not bucket:
        raise ConfigurationError("give --bucket or set MODEL_BUCKET (the model bucket holding ledger/)")
    return ModelBucket(boto3.client("s3"), bucket)


def _history(args: argparse.Namespace) -> int:
    """Print the ledger entry live at ``--at`` (JSON), or every entry when ``--at`` is not given."""
    import json

    from release.ledger import Ledger

    ledger = Ledger(_model_bucket(args))
    if args.at is None:
        for key, entry in ledger.entries():
            print(json.dumps({"ledger_key": key, **entry.model_dump(mode="json")}))
        return ExitCode.OK
    found = ledger.live_at(args.at)
    live = None if found is None else {"ledger_key": found[0], **found[1].model_dump(mode="json")}
    print(json.dumps({"at": args.at.isoformat(), "live": live}, indent=2))
    if found is None:
        LOG.info("nothing was live in prod at %s (no ledger entry at or before it)", args.at.isoformat())
    return ExitCode.OK


def _rollback(args: argparse.Namespace) -> int:
    import boto3

    from release.ledger import record_rollback

    bucket = _model_bucket(args)
    caller = boto3.client("sts").get_caller_identity()["Arn"]
    key, entry = record_rollback(bucket, args.to, reason=args.reason, recorded_by=caller, now=datetime.now(UTC))
    print(f"s3://{bucket.bucket}/{key}")
    LOG.info("ledger: prod is back on %s v%d (%s); champion.json moved", entry.model_name, entry.model_version,
             args.to)  # fmt: skip
    return ExitCode.OK


def _test_record(args: argparse.Namespace) -> int:
    """``check`` prints ``passed`` when the suite already passed for the sha; ``write`` records a pass."""
    import boto3

    from contracts.environment import ReleaseEnvironment
    from release.test_record import TestRecords

    records = TestRecords(boto3.client("s3"), args.bucket)
    if args.action == "check":
        print("passed" if records.passed(args.git_sha) else "not-recorded")
        return ExitCode.OK
    build_id = ReleaseEnvironment.from_env(error=ConfigurationError).codebuild_build_id
    key = records.write(args.git_sha, at=datetime.now(UTC), build_id=build_id)
    LOG.info("recorded the passing test suite of %s at s3://%s/%s", args.git_sha, args.bucket, key)
    return ExitCode.OK


def _deployed_image(args: argparse.Namespace) -> int:
    import boto3

    from contracts.environment import ReleaseEnvironment
    from release.deployed_image import image_from_definitions, record_deployed_image

    env = ReleaseEnvironment.from_env(error=ConfigurationError)
    key_id = (args.key_id or env.parameter_key_arn or "").strip()
    if not key_id:
        raise ConfigurationError("PARAMETER_KEY_ARN (or --key-id) is not set; the infra sets it to the stack key")
    if args.image_definitions is not None:
        image = image_from_definitions(args.image_definitions)
    else:  # the Release action's input: the same digest the deploy actions got (promotion by digest)
        from release.build_record import BuildRecordReader

        image = BuildRecordReader().read(args.build_record).pinned_app_image
    stack = (args.stack or env.stack_name or "").strip()
    for service in args.service:
        print(record_deployed_image(boto3.client("ssm"), stack=stack, service=service, image=image, key_id=key_id))
    return ExitCode.OK


def _image_tags(args: argparse.Namespace) -> int:
    import boto3

    from release.build_record import BuildRecordReader
    from release.image_tags import tag_release

    build = BuildRecordReader().read(args.build_record)
    print(
        tag_release(
            boto3.client("ecr"),
            app_repository=build.app_image.repository_name,
            app_digest=build.app_image_digest,
            jobs_repository=build.jobs_image.repository_name,
            jobs_digest=build.jobs_image_digest,
            at=args.at or datetime.now(UTC),
        )
    )
    return ExitCode.OK


def _alert_release_failed(settings: ReleaseSettings, s3: Any, exc: Exception) -> None:
    """Page: prod runs the new build but the record, pointer or job definitions may not say so. Best effort."""
    if not settings.alerts_topic_arn:
        return
    import boto3

    from alerting import Alert, AlertPublisher, S3DedupStore, Severity

    alert = Alert(
        source="release",
        kind="release-failed",
        severity=Severity.CRITICAL,
        summary=f"release step failed after the prod deploy: {type(exc).__name__}",
        where_to_look=f"CodePipeline execution {settings.pipeline_execution_id}, Release action log",
        details={
            "error": str(exc),
            "bucket": settings.model_bucket,
            "effect": "releases/, champion.json or the Batch job definitions may not reflect what prod runs",
        },
        dedup_key=settings.pipeline_execution_id,
    )
    try:
        AlertPublisher(boto3.client("sns"), settings.alerts_topic_arn, S3DedupStore(s3, settings.model_bucket)).publish(
            alert
        )
    except Exception:  # the original failure must still surface
        LOG.exception("could not publish the release-failed alert")


def _aware_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone; give e.g. 2026-01-01T00:00:00+00:00")
    return parsed


def _add_image_commands(commands: Any) -> None:
    """The Release step's image bookkeeping (issue #16): what Pulumi reads back and what ECR must keep."""
    deployed = commands.add_parser("deployed-image", help="record the deployed image for Pulumi (SSM parameter)")
    deployed.add_argument("--service", required=True, action="append", choices=("stage", "prod"))
    source = deployed.add_mutually_exclusive_group(required=True)
    source.add_argument("--image-definitions", type=Path, help="the build's imagedefinitions.json")
    source.add_argument("--build-record", help="the build record (its app image pinned by digest)")
    deployed.add_argument("--stack", default=None, help="Pulumi stack; default $STACK_NAME")
    deployed.add_argument("--key-id", default=None, help="KMS key of the SecureString; default $PARAMETER_KEY_ARN")
    deployed.set_defaults(run=_deployed_image)

    tags = commands.add_parser("image-tags", help="move keep-stage/keep-prod/keep-batch and add release-<time>")
    tags.add_argument("--build-record", required=True)
    tags.add_argument("--at", type=_aware_datetime, default=None, help="ISO-8601 with zone; default now")
    tags.set_defaults(run=_image_tags)


def parser() -> argparse.ArgumentParser:
    root = UsageArgumentParser(prog="python -m release", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, parser_class=UsageArgumentParser)

    info = commands.add_parser("model-info", help="verify a model package and print 'export MODEL_*=' lines")
    info.add_argument("model_dir", help="unpacked package directory or model.zip")
    info.set_defaults(run=_model_info)

    digest = commands.add_parser("image-digest", help="print the ECR digest of <repository uri>:<tag>")
    digest.add_argument("image")
    digest.add_argument("--missing-ok", action="store_true", help="print an empty line (exit 0) if the tag is absent")
    digest.set_defaults(run=_image_digest)

    defs = commands.add_parser("imagedefinitions", help="write imagedefinitions.json for the ECS deploy actions")
    defs.add_argument("--container-name", required=True)
    defs.add_argument("--image", required=True, help="<repository uri>@sha256:<digest>")
    defs.add_argument("--out", required=True)
    defs.set_defaults(run=_imagedefinitions)

    record = commands.add_parser("build-record", help="validate and write the build record")
    record.add_argument("--out", required=True)
    record.add_argument("--model-dir", required=True)
    record.add_argument("--git-sha", required=True)
    record.add_argument("--model-s3-version-id", required=True)
    record.add_argument("--app-image", required=True, help="<repository uri>:<git sha>-m<model version>")
    record.add_argument("--app-image-digest", required=True)
    record.add_argument("--jobs-image", required=True, help="<repository uri>:<git sha>")
    record.add_argument("--jobs-image-digest", required=True)
    record.add_argument("--built-at", type=_aware_datetime, default=None, help="ISO-8601 with zone; default now")
    record.set_defaults(run=_build_record)

    release = commands.add_parser("record", help="write the release record, move champion, update job definitions")
    release.add_argument("--build-record", required=True)
    release.set_defaults(run=_record)

    tests = commands.add_parser("test-record", help="has the test suite passed for this git sha? / record a pass")
    tests.add_argument("action", choices=("check", "write"))
    tests.add_argument("--bucket", required=True, help="the pipeline's artifact bucket")
    tests.add_argument("--git-sha", required=True)
    tests.set_defaults(run=_test_record)

    history = commands.add_parser("history", help="what was live in prod at --at (the promotion ledger)")
    history.add_argument("--at", type=_aware_datetime, default=None, help="ISO-8601 with zone; omit: every entry")
    history.add_argument("--bucket", default=None, help="the model bucket (default: MODEL_BUCKET)")
    history.set_defaults(run=_history)

    rollback = commands.add_parser("rollback", help="record that prod went back to an earlier release")
    rollback.add_argument(
        "--to", required=True, help="the release record key, e.g. releases/20260301T120000Z-0123.json"
    )
    rollback.add_argument("--reason", required=True, help="why (kept in the ledger)")
    rollback.add_argument("--bucket", default=None, help="the model bucket (default: MODEL_BUCKET)")
    rollback.set_defaults(run=_rollback)
    _add_image_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    return run_command(lambda: args.run(args), program=f"release {args.command}")


if __name__ == "__main__":
    sys.exit(main())
