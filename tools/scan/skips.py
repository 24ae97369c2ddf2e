"""The one skip file (``policy/checkov-skips.yaml``): every failed checkov check that stays, with its reason.

A skip names the check, the stacks it applies to, optionally the resources (``fnmatch`` patterns on the
Terraform address) and a reason. :func:`judge` splits a scan's failures into explained and unexplained,
and lists skips that no longer match any failure (stale entries must go, so the list stays short and true).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SKIP_FILE = Path(__file__).resolve().parents[2] / "policy" / "checkov-skips.yaml"
STACKS = ("dev", "prod")


class SkipFileError(ValueError):
    """The skip file is malformed; the message names the entry and what is allowed."""


@dataclass(frozen=True)
class Skip:
    check: str
    stacks: tuple[str, ...]
    reason: str
    resources: tuple[str, ...] = ("*",)

    def covers(self, stack: str, failure: Failure) -> bool:
        return (
            failure.check == self.check
            and stack in self.stacks
            and any(fnmatch.fnmatchcase(failure.resource, p) for p in self.resources)
        )


@dataclass(frozen=True)
class Failure:
    check: str
    resource: str
    name: str


@dataclass(frozen=True)
class Verdict:
    unexplained: list[Failure]
    explained: list[tuple[Failure, Skip]]
    stale: list[Skip]


def load_skips(path: Path = SKIP_FILE) -> list[Skip]:
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("skips")
    if not isinstance(entries, list):
        raise SkipFileError(f"{path.name}: expected a top-level 'skips:' list")
    skips = []
    for index, entry in enumerate(entries):
        skips.append(_parse(index, entry, path.name))
    return skips


def _parse(index: int, entry: Any, file_name: str) -> Skip:
    where = f"{file_name}: skips[{index}]"
    if not isinstance(entry, dict):
        raise SkipFileError(f"{where}: expected a mapping with check, stacks, reason (and optional resources)")
    unknown = set(entry) - {"check", "stacks", "reason", "resources"}
    if unknown:
        raise SkipFileError(f"{where}: unknown keys {sorted(unknown)}; allowed: check, stacks, reason, resources")
    check, stacks, reason = entry.get("check"), entry.get("stacks"), entry.get("reason")
    if not isinstance(check, str) or not check.startswith("CKV"):
        raise SkipFileError(f"{where}: check = {check!r}; expected a checkov check id such as CKV_AWS_144")
    if not isinstance(stacks, list) or not stacks or any(s not in STACKS for s in stacks):
        raise SkipFileError(f"{where} ({check}): stacks = {stacks!r}; expected a non-empty subset of {list(STACKS)}")
    if not isinstance(reason, str) or len(reason.strip()) < 20:
        raise SkipFileError(f"{where} ({check}): a reason of at least 20 characters is required")
    resources = entry.get("resources", ["*"])
    if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
        raise SkipFileError(f"{where} ({check}): resources must be a list of address patterns")
    return Skip(check, tuple(stacks), reason.strip(), tuple(resources))


def failures_from_checkov(report: Any) -> list[Failure]:
    """Failed checks from checkov's ``-o json`` output (one report, or a list of one per framework)."""
    reports = report if isinstance(report, list) else [report]
    failures = []
    for item in reports:
        for failed in item.get("results", {}).get("failed_checks", []):
            failures.append(Failure(failed["check_id"], failed["resource"], failed.get("check_name", "")))
    return sorted(set(failures), key=lambda f: (f.check, f.resource))


def judge(stack: str, failures: list[Failure], skips: list[Skip]) -> Verdict:
    explained: list[tuple[Failure, Skip]] = []
    unexplained: list[Failure] = []
    used: set[Skip] = set()
    for failure in failures:
        skip = next((s for s in skips if s.covers(stack, failure)), None)
        if skip is None:
            unexplained.append(failure)
        else:
            explained.append((failure, skip))
            used.add(skip)
    stale = [s for s in skips if stack in s.stacks and s not in used]
    return Verdict(unexplained, explained, stale)
