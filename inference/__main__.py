"""``python -m inference run``: score a CSV/Parquet table (local or s3://) with a model package.

Flags win over the environment (MODEL_REF, MODEL_BUCKET, INPUT_URI, OUTPUT_URI, CHUNK_ROWS,
ALERTS_TOPIC_ARN, ALERT_WINDOW_MINUTES; see docs/inference.md). Exit status
(``contracts.exit_codes.ExitCode``, docs/exit-codes.md): 0 done (rejected rows are reported, not a
failure), 7 bad input data, 8 bad configuration, 64 usage, 143 stopped by SIGTERM (partial files removed),
a ``PackageError``'s code for a bad model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from alerting import AlertPublisher, LocalDedupStore, S3DedupStore
from contracts.environment import InferenceEnvironment
from contracts.exit_codes import ExitCode, UsageArgumentParser
from inference.job import InferenceJob, JobTerminated, terminate_on_sigterm
from inference.readers import DEFAULT_CHUNK_ROWS
from jobs_common.champion import resolve_model
from jobs_common.cli import BAD_INPUT, run_command
from model_package.errors import JobConfigError


def _needs_s3(*values: str | None) -> bool:
    return any(v and (v.startswith("s3://") or v == "champion" or v.isdigit()) for v in values)


def cmd_run(args: argparse.Namespace) -> int:
    env = InferenceEnvironment.from_env(error=JobConfigError)  # the variables the job definition sets
    model_ref = args.model or env.model_ref
    input_uri = args.input or env.input_uri
    output_uri = args.output or env.output_uri
    if not input_uri or not output_uri:
        raise ValueError("set --input/--output (or INPUT_URI/OUTPUT_URI): where to read and where to write")
    chunk_rows = args.chunk_rows or env.chunk_rows or DEFAULT_CHUNK_ROWS
    bucket = env.model_bucket
    s3: Any = None
    if _needs_s3(model_ref, input_uri, output_uri):
        import boto3

        s3 = boto3.client("s3")
    package = resolve_model(str(model_ref), s3, bucket)
    from model_package.runtime import load_predictor

    predictor = load_predictor(package, runtime=args.runtime, allow_pickle=env.allow_pickle)
    window = timedelta(minutes=env.alert_window_minutes)
    topic = env.alerts_topic_arn
    if bucket and s3 is not None:
        sns = None
        if topic:
            import boto3

            sns = boto3.client("sns")
        publisher = AlertPublisher(sns, topic, S3DedupStore(s3, bucket), window=window)
    else:
        # Local runs: the de-dup state goes to the temp dir unless asked, never into the working tree.
        default = Path(tempfile.gettempdir()) / "ml-delivery"
        state = Path(env.alert_state_dir or default) / ".alerts-sent.json"
        publisher = AlertPublisher(None, None, LocalDedupStore(state), window=window)
    job = InferenceJob(
        package,
        predictor,
        chunk_rows=chunk_rows,
        threshold=args.threshold,
        out_of_range=args.out_of_range,
        s3_client=s3,
        publisher=publisher,
    )
    try:
        with terminate_on_sigterm():
            result = job.run(str(input_uri), str(output_uri))
    except JobTerminated as exc:
        print(
            f"error: {exc} (SIGTERM): stopped; partial output files were removed and {output_uri} was left as it was",
            file=sys.stderr,
        )
        return ExitCode.TERMINATED
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return ExitCode.OK


def parser() -> argparse.ArgumentParser:
    root = UsageArgumentParser(prog="python -m inference", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True, parser_class=UsageArgumentParser)
    run = commands.add_parser("run", help="score a table in chunks")
    run.add_argument("--model", help="champion | <version> | s3://bucket/key | local model.zip (env MODEL_REF)")
    run.add_argument("--input", help="CSV or Parquet, local or s3:// (env INPUT_URI)")
    run.add_argument("--output", help=".csv or .parquet, local or s3:// (env OUTPUT_URI)")
    run.add_argument("--chunk-rows", type=int, help=f"rows per chunk (env CHUNK_ROWS, default {DEFAULT_CHUNK_ROWS})")
    run.add_argument("--threshold", type=float, default=0.5, help="probability at or above which prediction is 1")
    run.add_argument("--out-of-range", default="warn", choices=["warn", "reject"])
    run.add_argument("--runtime", default="onnx", choices=["onnx", "skops", "pickle"])
    run.set_defaults(func=cmd_run)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    if not 0 < args.threshold < 1:
        print(f"error: --threshold must be between 0 and 1, got {args.threshold}", file=sys.stderr)
        return ExitCode.USAGE
    return run_command(lambda: args.func(args), program=f"inference {args.command}", bad_input=BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
