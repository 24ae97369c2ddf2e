"""``python -m evaluation run --candidate DIR [--env-out FILE]``: the pipeline's Evaluate action.

Exit status (contracts/exit_codes.py, docs/exit-codes.md): 0 the candidate passed; 17 CANDIDATE_REJECTED it
failed a check (the report says which); 8 CONFIG a setting is wrong; 64 USAGE a bad command line; 1 anything
unexpected, with the traceback. ``--env-out`` writes ``export EVAL_*=``
lines for the buildspec to source, so its ``exported-variables`` reach the Approval action.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.exit_codes import UsageArgumentParser
from evaluation.settings import EvaluationSettings
from jobs_common.cli import run_command


def parser() -> argparse.ArgumentParser:
    root = UsageArgumentParser(prog="python -m evaluation", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, parser_class=UsageArgumentParser)
    run = commands.add_parser("run", help="evaluate a candidate package; write the report; exit 17 if it fails")
    run.add_argument("--candidate", required=True, help="unpacked package directory or model.zip")
    run.add_argument("--stage-url", default=None, help="overrides STAGE_URL")
    run.add_argument("--env-out", default=None, help="write 'export EVAL_*=' lines here")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    return run_command(lambda: _run(args), program=f"evaluation {args.command}")


def _run(args: argparse.Namespace) -> int:
    settings = EvaluationSettings.from_env(stage_url=args.stage_url)
    import boto3

    from evaluation.job import EvaluationJob, exported_variables, shell_exports

    result = EvaluationJob(settings, boto3.client("s3"), args.candidate).run()
    if args.env_out:
        Path(args.env_out).write_text(shell_exports(exported_variables(result, settings)))
    print(result.summary)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
