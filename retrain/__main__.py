"""Command line: ``python -m retrain {run,train,verify,synth}``.

Exit codes (``contracts.exit_codes.ExitCode``, docs/exit-codes.md): 0 success (for ``run`` also a
rejected or unchanged candidate); 1 unexpected error; 2 package unusable; 3 manifest invalid; 4 integrity
(sha256) mismatch; 5 schema inconsistent; 6 ONNX/estimator parity failed; 7 bad training data; 8 invalid
settings; 9 upload refused; 64 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.exit_codes import ExitCode, UsageArgumentParser
from jobs_common.cli import run_command
from jobs_common.errors import UsageError
from model_package.manifest import TASK_METRICS
from retrain.logs import configure_logging

LOG = logging.getLogger("retrain")


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = UsageArgumentParser(
        prog="python -m retrain", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--plain-logs", action="store_true", help="human-readable logs instead of JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=UsageArgumentParser)

    run = sub.add_parser("run", help="the Batch retrain job (settings from the environment, flags override)")
    for flag, dest, kind in [
        ("--data", "data_uri", str),
        ("--sql-name", "sql_name", str),
        ("--database-url", "database_url", str),
        ("--target", "target", str),
        ("--time-column", "time_column", str),
        ("--bucket", "model_bucket", str),
        ("--model-key", "model_key", str),
        ("--model-name", "model_name", str),
        ("--topic-arn", "alerts_topic_arn", str),
        ("--gate-metric", "gate_metric", str),
        ("--gate-tolerance", "gate_tolerance", float),
        ("--gate-floor", "gate_floor", float),
        ("--min-rows", "min_rows", int),
        ("--git-sha", "git_sha", str),
        ("--seed", "seed", int),
    ]:
        run.add_argument(flag, dest=dest, type=kind, default=None)

    train = sub.add_parser("train", help="train a package locally from a CSV or Parquet file")
    train.add_argument("--data", required=True, help="CSV or Parquet file")
    train.add_argument("--target", required=True, help="target column (binary, multiclass or regression)")
    train.add_argument(
        "--task", choices=["binary", "multiclass", "regression"], default=None, help="override the inferred task"
    )
    train.add_argument("--positive", default=None, help="binary: the positive label (e.g. bad, yes); recorded")
    train.add_argument("--id-columns", type=_csv_list, default=(), help="id columns: passed through, never features")
    train.add_argument("--exclude", type=_csv_list, default=(), help="comma-separated columns to leave out")
    train.add_argument(
        "--drop-null-target",
        action="store_true",
        help="drop rows with a null target (count reported) instead of failing",
    )
    train.add_argument("--estimator", default=None, help="MODULE:FACTORY returning an unfitted estimator or Pipeline")
    train.add_argument("--params", default=None, help="JSON file of hyperparameters (set_params names)")
    train.add_argument(
        "--format",
        dest="model_format",
        choices=["auto", "onnx", "skops"],
        default="auto",
        help="auto: ONNX where a converter exists, else skops; onnx: refuse without a converter",
    )
    train.add_argument("--out", required=True, help="where to write model.zip")
    train.add_argument(
        "--categorical", type=_csv_list, default=None, help="comma-separated columns to treat as categories"
    )
    train.add_argument("--numeric", type=_csv_list, default=None, help="comma-separated columns to treat as numbers")
    train.add_argument("--time-column", default=None, help="date column: time-based holdout, not a feature")
    train.add_argument("--name", default="model", help="model name: lower-case letters, digits, '-' (max 63)")
    train.add_argument("--version", type=int, default=1)
    train.add_argument("--min-rows", type=int, default=50)
    train.add_argument("--git-sha", default="unknown")
    train.add_argument("--seed", type=int, default=0)

    verify = sub.add_parser("verify", help="check a model.zip: integrity, schema, ONNX-vs-estimator parity")
    verify.add_argument("package", help="model.zip or an unpacked package directory")
    verify.add_argument("--tolerance", type=float, default=None, help="max |onnx - estimator| (default 1e-4)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.add_argument("--expect-sha256", default=None, help="the manifest sha256 the package must have")

    synth = sub.add_parser("synth", help="write deterministic synthetic churn data")
    synth.add_argument("--rows", type=int, default=5000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--days", type=int, default=90)
    synth.add_argument("--out", required=True, help=".csv or .parquet")
    synth.add_argument(
        "--task",
        choices=["binary", "multiclass", "regression"],
        default="binary",
        help="target: churn (binary), plan (multiclass), lifetime_value (regression)",
    )
    synth.add_argument("--with-id", action="store_true", help="add a unique customer_id column")
    return parser


def _run(args: argparse.Namespace) -> int:
    import boto3

    from retrain.job import RetrainJob
    from retrain.settings import Settings

    overrides = {k: getattr(args, k) for k in vars(args) if k not in ("command", "log_level", "plain_logs")}
    settings = Settings.from_env(**overrides).for_run()
    job = RetrainJob(settings, boto3.client("s3"), boto3.client("sns") if settings.alerts_topic_arn else None)
    result = job.run()
    print(json.dumps({"decision": str(result.decision), "reason": result.reason, "report": result.report_key}))
    return result.exit_code


def _train(args: argparse.Namespace) -> int:
    from jobs_common.readers import LocalFileReader
    from model_package.archive import write_atomically
    from model_package.errors import ManifestError
    from model_package.manifest import check_name
    from retrain.api import load_factory, load_params
    from retrain.training import fit_candidate

    try:  # before reading or fitting anything: the name is part of S3 keys and image tags
        check_name(args.name)
    except ManifestError as exc:
        raise UsageError(f"--name: {exc}") from None
    estimator = load_factory(args.estimator) if args.estimator else None
    params = load_params(args.params) if args.params else None
    data = LocalFileReader(args.data).read()
    frame = data.frame
    result = fit_candidate(
        frame,
        args.target,
        name=args.name,
        version=args.version,
        data_uri=str(Path(args.data).resolve().as_uri()),
        data_sha256=data.sha256,
        git_sha=args.git_sha,
        time_column=args.time_column,
        seed=args.seed,
        categorical=args.categorical,
        numeric=args.numeric,
        min_rows=args.min_rows,
        task=args.task,
        positive=args.positive,
        id_columns=args.id_columns,
        exclude=args.exclude,
        drop_null_target=args.drop_null_target,
        estimator=estimator,
        hyperparameters=params,
        model_format=args.model_format,
    )
    write_atomically(args.out, result.data)
    manifest = result.manifest
    m = manifest.metrics
    shown = ", ".join(f"{k}={v:.4f}" for k in TASK_METRICS[manifest.task.type] if (v := m.value(k)) is not None)
    labels = f" labels {list(manifest.task.labels)}" if manifest.task.labels else ""
    dropped = f"; dropped {result.dropped_null_target} rows with a null target" if result.dropped_null_target else ""
    print(
        f"wrote {args.out}: {manifest.name} v{manifest.version}, {manifest.task.type}{labels}, "
        f"{len(manifest.features)} features, {manifest.runtime.format} ({manifest.runtime.converter}), "
        f"holdout {shown} (primary {m.primary_metric}, {'higher' if m.higher_is_better else 'lower'} is better)"
        f"{dropped}"
    )
    return ExitCode.OK


def _verify(args: argparse.Namespace) -> int:
    from retrain.verify import PARITY_TOLERANCE, verify_package

    tolerance = args.tolerance if args.tolerance is not None else PARITY_TOLERANCE
    result = verify_package(args.package, tolerance, expect_sha256=args.expect_sha256)
    print(json.dumps(result.__dict__) if args.json else result.summary())
    return ExitCode.OK


def _synth(args: argparse.Namespace) -> int:
    from model_package.archive import write_atomically
    from retrain.synthetic import MULTICLASS_TARGET, REGRESSION_TARGET, TARGET, generate_task_frame

    frame = generate_task_frame(args.task, args.rows, seed=args.seed, with_id=args.with_id, days=args.days)
    suffix = Path(args.out).suffix.lower()
    if suffix == ".csv":
        data = frame.to_csv(index=False).encode()
    elif suffix in (".parquet", ".pq"):
        data = frame.to_parquet(index=False)
    else:
        raise UsageError(f"--out {args.out}: unknown format {suffix!r}; allowed: .csv, .parquet")
    write_atomically(args.out, data)
    target = {"binary": TARGET, "multiclass": MULTICLASS_TARGET, "regression": REGRESSION_TARGET}[args.task]
    print(f"wrote {args.out}: {len(frame)} rows, {args.task} target {target!r}")
    return ExitCode.OK


COMMANDS = {"run": _run, "train": _train, "verify": _verify, "synth": _synth}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json_lines=not args.plain_logs)
    return run_command(lambda: COMMANDS[args.command](args), program=f"retrain {args.command}")


if __name__ == "__main__":
    sys.exit(main())
