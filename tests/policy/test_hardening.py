"""Independent checkers over the whole program: parliament on every IAM policy document in both plans,
hadolint on every Dockerfile. The only waivers are in policy/exceptions.yaml, each with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from parliament import analyze_policy_string

from tests.infra.plan_queries import policy_documents
from tools.plan.offline import OfflineRun, run_offline

ROOT = Path(__file__).resolve().parents[2]
EXCEPTIONS = yaml.safe_load((ROOT / "policy" / "exceptions.yaml").read_text())
HADOLINT = Path(sys.executable).parent / "hadolint"


def _waived(finding) -> bool:
    # parliament puts the actions of a finding in ``location`` for some auditors and ``detail`` for others.
    where = {**(finding.location if isinstance(finding.location, dict) else {}),
             **(finding.detail if isinstance(finding.detail, dict) else {})}  # fmt: skip
    # RESOURCE_STAR names its actions as a bare list in ``detail``.
    listed = finding.detail if isinstance(finding.detail, list) else where.get("actions", [])
    # RESOURCE_MISMATCH names them as [{"action": ..., "required_format": ...}, ...].
    actions = {str(a["action"] if isinstance(a, dict) else a).lower() for a in listed}
    waived = {a.lower() for w in EXCEPTIONS["parliament"] if w["issue"] == finding.issue for a in w["actions"]}
    return bool(actions) and actions <= waived


@pytest.fixture(scope="module", params=["dev", "prod"])
def run(request: pytest.FixtureRequest) -> OfflineRun:
    return run_offline(request.param)


def test_parliament_finds_nothing_in_any_policy_document(run: OfflineRun) -> None:
    checked, problems = 0, []
    for resource, key, document in policy_documents(run):
        if key == "assumeRolePolicy" or resource.type != "aws:iam/rolePolicy:RolePolicy":
            # Trust and resource policies carry a Principal, which parliament's identity-policy checks misread;
            # the policy pack's wildcard rule covers them.
            continue
        checked += 1
        policy = analyze_policy_string(json.dumps(document), include_community_auditors=True)
        problems += [f"{resource.name}: {f.issue} {f.detail}" for f in policy.findings if not _waived(f)]
    assert checked >= 8
    assert problems == []


def test_parliament_does_flag_a_bad_policy() -> None:
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "iam:PassRole"],
                                                   "Resource": "*"}]}  # fmt: skip
    issues = {f.issue for f in analyze_policy_string(json.dumps(bad), include_community_auditors=True).findings}
    assert "RESOURCE_STAR" in issues


def test_every_exception_names_a_reason() -> None:
    for action, reason in EXCEPTIONS["resource_star_actions"].items():
        assert ":" in action and "*" not in action and len(reason) > 30, action
    for section in ("parliament", "hadolint"):
        for entry in EXCEPTIONS[section] or []:
            assert len(entry.get("reason", "")) > 40, entry


def _dockerfiles() -> list[Path]:
    return sorted((ROOT / "docker").glob("*.Dockerfile"))


def test_there_are_dockerfiles_for_the_app_and_the_jobs() -> None:
    assert {p.name for p in _dockerfiles()} >= {"app.Dockerfile", "jobs.Dockerfile"}


@pytest.mark.parametrize("dockerfile", _dockerfiles(), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    ignores = [arg for rule in EXCEPTIONS["hadolint"] or [] for arg in ("--ignore", rule["rule"])]
    completed = subprocess.run([str(HADOLINT), "--no-color", *ignores, str(dockerfile)], capture_output=True,
                               text=True, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\n")
    completed = subprocess.run([str(HADOLINT), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert completed.returncode != 0
    assert "DL3007" in completed.stdout  # latest tag


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}  # fmt: skip
    assert {".venv", ".git", "tests"} <= ignored
    copied = set()
    for dockerfile in _dockerfiles():
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from" not in line:
                copied.add(line.split()[1].split("/")[0])
    assert copied & ignored == set(), copied & ignored
    assert "build" not in ignored  # the pipeline puts the unpacked model in build/model
