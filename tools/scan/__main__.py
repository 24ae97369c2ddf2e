"""``python -m tools.scan``: export each stack's offline plan as a Terraform plan and scan it with checkov.

Exit 0 only when every failed check is explained by ``policy/checkov-skips.yaml`` for that stack and no
skip is stale; otherwise print what is wrong and exit 1. checkov runs from its own venv (``.venv-scan``,
``requirements/scan.txt``) with ``--skip-download``: no network, only the checks shipped in the package.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.plan.offline import run_offline
from tools.scan.skips import STACKS, failures_from_checkov, judge, load_skips
from tools.scan.tfplan import to_terraform_plan

ROOT = Path(__file__).resolve().parents[2]


def run_checkov(checkov: Path, plan_file: Path) -> object:
    completed = subprocess.run(  # a fixed argv, no shell
        [str(checkov), "--framework", "terraform_plan", "-f", str(plan_file), "--output", "json", "--quiet",
         "--compact", "--skip-download", "--repo-root-for-plan-enrichment", str(ROOT)],
        capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE",
                                                          "CHECKOV_CREATE_GRAPH": "True"},
    )  # fmt: skip
    # checkov exits 1 when a check fails; only an unparsable output is an error of the scan itself.
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError:
        tail = completed.stderr[-2000:]
        raise SystemExit(f"checkov produced no JSON (exit {completed.returncode}): {tail}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.scan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=STACKS)
    parser.add_argument("--checkov", type=Path, default=ROOT / ".venv-scan" / "bin" / "checkov")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "build" / "scan")
    args = parser.parse_args(argv)
    if not args.checkov.exists():
        print(f"error: {args.checkov} not found; 'make scan' creates .venv-scan from requirements/scan.txt",
              file=sys.stderr)  # fmt: skip
        return 2
    skips = load_skips()
    ok = True
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for stack in args.stacks:
        plan_file = args.out_dir / f"{stack}.tfplan.json"
        plan_file.write_text(json.dumps(to_terraform_plan(run_offline(stack)), indent=1, default=str))
        report = run_checkov(args.checkov, plan_file)
        (args.out_dir / f"{stack}.checkov.json").write_text(json.dumps(report, indent=1))
        verdict = judge(stack, failures_from_checkov(report), skips)
        print(f"{stack}: {len(verdict.explained)} failed checks explained by the skip file, "
              f"{len(verdict.unexplained)} unexplained, {len(verdict.stale)} stale skips")  # fmt: skip
        for failure in verdict.unexplained:
            print(f"  UNEXPLAINED {failure.check} {failure.resource}: {failure.name}")
        for skip in verdict.stale:
            print(f"  STALE SKIP {skip.check} {list(skip.resources)}: no such failure on {stack}; remove it")
        ok = ok and not verdict.unexplained and not verdict.stale
    print("scan: OK" if ok else "scan: FAILED (fix the resource or add a reasoned skip to policy/checkov-skips.yaml)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
