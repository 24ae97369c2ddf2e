"""``python -m monitor drift|sensitivity|summary`` (the Batch jobs, and their local forms).

Local runs name their inputs with flags (``--model``, ``--data``, ``--out``); without ``--model`` the
job reads its environment (docs/monitoring.md lists every variable). Exit status
(``contracts.exit_codes.ExitCode``, docs/exit-codes.md): 0 done (drift or not: drift is reported, not
a failure), 7 bad input data, 8 bad configuration, 16 too few rows to judge, 64 usage, a
``PackageError``'s own code for an unusable model package.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alerting import AlertPublisher, LocalDedupStore, S3DedupStore
from contracts.environment import MonitorEnvironment
from contracts.exit_codes import ExitCode, UsageArgumentParser
from jobs_common.capture import (
    CaptureReader,
    FileCaptureReader,
    S3CaptureReader,
    SqlCaptureReader,
    attach_labels,
    observations_from_records,
    parse_time,
    read_labels,
    read_observations,
)
from jobs_common.champion import live_model, resolve_model
from jobs_common.cli import BAD_INPUT, run_command
from model_package.errors import JobConfigError
from monitor.drift import DriftAnalysis
from monitor.drift_job import DriftJob, RetrainTrigger
from monitor.privacy import privacy_from_env
from monitor.render import render_sensitivity
from monitor.sensitivity import SensitivityStudy, format_table
from monitor.settings import MonitorSettings
from monitor.sinks import LocalReportSink, MultiSink, ReportSink, S3ReportSink
from monitor.summary import SummaryJob
from monitor.thresholds import DriftThresholds
from monitor.window import RunLedger, drift_window, report_root

LOG = logging.getLogger("monitor")
LOCAL_DEDUP = ".alerts-sent.json"


def _predictor(package: Any, runtime: str) -> Any:
    from model_package.runtime import load_predictor

    return load_predictor(package, runtime=runtime)  # type: ignore[arg-type]


def _local_publisher(out: Path, window_minutes: int) -> AlertPublisher:
    from datetime import timedelta

    return AlertPublisher(None, None, LocalDedupStore(out / LOCAL_DEDUP), window=timedelta(minutes=window_minutes))


def _environment() -> MonitorEnvironment:
    """The monitor's variables (``contracts.environment``); local runs read the few they use from it."""
    return MonitorEnvironment.from_env(error=JobConfigError)


def _cloud_publisher(s3: Any, settings: MonitorSettings) -> AlertPublisher:
    import boto3

    sns = boto3.client("sns") if settings.alerts_topic_arn else None
    store = S3DedupStore(s3, settings.model_bucket)
    return AlertPublisher(sns, settings.alerts_topic_arn, store, window=settings.alert_window)


def cmd_drift(args: argparse.Namespace) -> int:
    thresholds = DriftThresholds.from_file(args.thresholds or _environment().drift_thresholds_file).with_env()
    if args.model:
        if not args.data or not args.out:
            raise ValueError("local drift needs --data PATH and --out DIR with --model")
        package = resolve_model(args.model)
        observations = read_observations(args.data, package.manifest)
        if args.labels:
            attach_labels(observations, read_labels(args.labels, package.manifest.target, task=package.manifest.task))
        out = Path(args.out)
        analysis = DriftAnalysis(
            package,
            thresholds,
            _predictor(package, args.runtime),
            run_adversarial=not args.no_adversarial,
            privacy=privacy_from_env(package.manifest),  # capture privacy hook (monitor/privacy.py)
        )
        publisher = _local_publisher(out, _environment().alert_window_minutes)
        job = DriftJob(analysis, LocalReportSink(out), publisher)
        report = job.run(observations, {"source": args.data})
    else:
        report = _cloud_drift(args, thresholds)
    print(
        json.dumps(
            {
                "dataset_drift": report.dataset_drift,
                "concept_drift": report.concept_drift,
                "drifted_features": report.drifted_features,
                "report": report.locations,
            },
            indent=2,
        )
    )
    return ExitCode.OK


def _cloud_drift(args: argparse.Namespace, thresholds: DriftThresholds) -> Any:
    import boto3

    settings = MonitorSettings.from_env()
    s3 = boto3.client("s3")
    package = live_model(s3, settings.model_bucket, settings.model_key)
    manifest = package.manifest
    root = report_root(settings.report_prefix, manifest)
    ledger = RunLedger(s3, settings.model_bucket, root)
    now = parse_time(args.now) if args.now else datetime.now(UTC)
    window = drift_window(manifest, now, ledger.last_success(), settings.drift_window, settings.drift_max_window)
    LOG.info("drift window of %s v%s: [%s, %s) %s", manifest.name, manifest.version, window.since, now, window.basis)
    reader: CaptureReader = (
        SqlCaptureReader(settings.capture_db_url)
        if settings.capture_db_url
        else S3CaptureReader(
            s3,
            str(settings.capture_bucket),
            settings.capture_prefix,
            settings.capture_read_workers,
            max_records=settings.drift_max_rows,
        )
    )
    records = reader.read(manifest, window.since, window.until)
    window_info = window.to_dict()
    if isinstance(reader, S3CaptureReader) and reader.last_seen > len(records):
        window_info["sampled"] = f"{len(records)} of {reader.last_seen} records (DRIFT_MAX_ROWS)"
    observations = observations_from_records(records, manifest.target, manifest.task)
    if settings.labels_uri:
        attach_labels(observations, read_labels(settings.labels_uri, manifest.target, s3, task=manifest.task))
    sinks: list[ReportSink] = [S3ReportSink(s3, settings.model_bucket, f"{root}/{now:%Y%m%dT%H%M%SZ}")]
    if args.out:
        sinks.append(LocalReportSink(args.out))
    retrain = None
    if settings.retrain_enabled:
        retrain = RetrainTrigger(
            boto3.client("batch"), str(settings.retrain_job_queue), str(settings.retrain_job_definition)
        )
    privacy = privacy_from_env(manifest)  # capture privacy hook (monitor/privacy.py)
    analysis = DriftAnalysis(package, thresholds, _predictor(package, args.runtime), privacy=privacy)
    job = DriftJob(analysis, MultiSink(*sinks), _cloud_publisher(s3, settings), retrain)
    report = job.run(observations, window_info)
    ledger.record_success(window, report.locations.get("json"))  # last: only a finished run moves the window
    return report


def cmd_sensitivity(args: argparse.Namespace) -> int:
    package = resolve_model(args.model)
    thresholds = DriftThresholds.from_file(args.thresholds)
    observations = read_observations(args.data, package.manifest)
    if observations.labels is None:
        raise ValueError(f"{args.data}: sensitivity needs the target column {package.manifest.target!r}")
    rows = SensitivityStudy(package, _predictor(package, args.runtime), thresholds).run(
        observations.inputs, labels=observations.labels
    )
    print(format_table(rows))
    out = LocalReportSink(args.out)
    title = f"Drift sensitivity: {package.manifest.name} v{package.manifest.version}"
    json_path = out.write(
        "sensitivity.json", (json.dumps({"rows": rows}, indent=2) + "\n").encode(), "application/json"
    )
    out.write("sensitivity.html", render_sensitivity(rows, title).encode(), "text/html; charset=utf-8")
    print(f"written {json_path} and sensitivity.html", file=sys.stderr)
    return ExitCode.OK


def cmd_summary(args: argparse.Namespace) -> int:
    from datetime import timedelta

    end = parse_time(args.now) if args.now else datetime.now(UTC)
    if args.data:
        env = _environment()
        window = timedelta(minutes=args.window_minutes or env.summary_window_minutes)
        min_count = args.min_count if args.min_count is not None else env.summary_min_count
        out = Path(args.out or ".")
        records = FileCaptureReader(args.data).read(None, end - window, end)
        job = SummaryJob(LocalReportSink(out), _local_publisher(out, env.alert_window_minutes), min_count, window)
    else:
        import boto3

        settings = MonitorSettings.from_env()
        s3 = boto3.client("s3")
        window, min_count = settings.summary_window, settings.summary_min_count
        reader: CaptureReader = (
            SqlCaptureReader(settings.capture_db_url)
            if settings.capture_db_url
            else S3CaptureReader(
                s3, str(settings.capture_bucket), settings.capture_prefix, settings.capture_read_workers
            )
        )
        records = reader.read(None, end - window, end)
        prefix = settings.report_prefix.rsplit("/", 1)[0] + "/summary"
        job = SummaryJob(
            S3ReportSink(s3, settings.model_bucket, prefix), _cloud_publisher(s3, settings), min_count, window
        )
    print(json.dumps(job.run(records, end), indent=2))
    return ExitCode.OK


def parser() -> argparse.ArgumentParser:
    root = UsageArgumentParser(prog="python -m monitor", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True, parser_class=UsageArgumentParser)
    drift = commands.add_parser("drift", help="data and concept drift report (+ alerts, optional retrain)")
    drift.add_argument("--model", help="model.zip (local mode); without it the job reads its environment")
    drift.add_argument("--data", help="production rows: CSV, Parquet or capture JSON lines (file or directory)")
    drift.add_argument("--labels", help="ground truth by uid (CSV/Parquet/JSON lines with uid and the target)")
    drift.add_argument("--out", help="directory for report.json and report.html")
    drift.add_argument("--thresholds", help="JSON file overriding drift thresholds (see docs/monitoring.md)")
    drift.add_argument("--no-adversarial", action="store_true", help="skip the adversarial classifier")
    drift.add_argument("--runtime", default="onnx", choices=["onnx", "skops"])
    drift.add_argument("--now", help="end of the window (ISO-8601), cloud mode; default now")
    drift.set_defaults(func=cmd_drift)
    sens = commands.add_parser("sensitivity", help="how much simulated drift hurts log loss and lift")
    sens.add_argument("--model", required=True)
    sens.add_argument("--data", required=True, help="labelled holdout: CSV or Parquet with the target column")
    sens.add_argument("--out", default="sensitivity-report", help="directory for sensitivity.json/.html")
    sens.add_argument("--thresholds")
    sens.add_argument("--runtime", default="onnx", choices=["onnx", "skops"])
    sens.set_defaults(func=cmd_sensitivity)
    summ = commands.add_parser("summary", help="prediction volume, mean prediction, latency for the last window")
    summ.add_argument("--data", help="capture JSON lines (local mode); without it the job reads its environment")
    summ.add_argument("--out", help="directory for the summary JSON (local mode)")
    summ.add_argument("--window-minutes", type=int)
    summ.add_argument("--min-count", type=int)
    summ.add_argument("--now", help="end of the window (ISO-8601); default now")
    summ.set_defaults(func=cmd_summary)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return run_command(lambda: args.func(args), program=f"monitor {args.command}", bad_input=BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
