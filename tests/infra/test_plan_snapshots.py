"""Both stacks' offline plans against the recorded ones in ``tests/infra/plans/`` (issue #15).

A change to what ``pulumi up`` would do shows up as a diff of ``tests/infra/plans/<stack>.json`` in the pull
request; a change that should not touch the plan (a refactoring, a move) fails here with a unified diff.
``make plan-snapshots`` rewrites the recorded plans from the CLI (``python -m tools.plan --format json``),
the same text this test recomputes.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tools.plan.offline import OfflineRun
from tools.plan.plan import render_json

PLANS = Path(__file__).resolve().parent / "plans"
# A readable failure: the first lines of the diff, and how to accept the change on purpose.
MAX_DIFF_LINES = 200


def plan_diff(recorded: str, current: str, stack: str) -> str:
    """The unified diff between the recorded and the recomputed plan, cut to ``MAX_DIFF_LINES`` lines."""
    lines = list(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=f"tests/infra/plans/{stack}.json (recorded)",
            tofile=f"{stack} plan (this checkout)",
        )
    )
    shown = "".join(lines[:MAX_DIFF_LINES])
    if len(lines) > MAX_DIFF_LINES:
        shown += f"... {len(lines) - MAX_DIFF_LINES} more diff lines\n"
    return shown


def test_plan_matches_the_recorded_snapshot(stack: OfflineRun) -> None:
    recorded = (PLANS / f"{stack.stack}.json").read_text()
    # The CLI prints the JSON followed by one newline; the recorded files are that output.
    current = render_json(stack) + "\n"
    if current != recorded:
        pytest.fail(
            f"the {stack.stack} plan differs from tests/infra/plans/{stack.stack}.json; if the change is intended, "
            f"run `make plan-snapshots` and commit the new snapshot:\n{plan_diff(recorded, current, stack.stack)}",
            pytrace=False,
        )


def test_the_diff_names_the_changed_line() -> None:
    recorded = '{\n  "a": 1,\n  "b": 2\n}\n'
    current = '{\n  "a": 1,\n  "b": 3\n}\n'
    diff = plan_diff(recorded, current, "dev")
    assert '-  "b": 2\n' in diff and '+  "b": 3\n' in diff
    assert "tests/infra/plans/dev.json (recorded)" in diff
