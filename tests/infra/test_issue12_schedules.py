"""Issue #12 defects 4 and 5, infra side: nothing is scheduled against the ``:bootstrap`` jobs image.

``pulumi up`` creates the schedules DISABLED and never touches their state again; the Release action (which
re-registers the job definitions with the built jobs image) is told which schedules to enable and may do
exactly that, and may archive the released package under ``models/<version>/``.
"""

from __future__ import annotations

from release.schedules import parse_schedule_names
from tests.infra.plan_queries import allowed_actions, role_policy, statements
from tests.infra.test_pipeline import project_env
from tools.plan.offline import OfflineRun

SCHEDULE = "aws:scheduler/schedule:Schedule"
ACCOUNT = "123456789012"


def test_schedules_are_created_disabled_and_pulumi_leaves_their_state_to_the_release(stack: OfflineRun) -> None:
    schedules = stack.of_type(SCHEDULE)
    assert {s.inputs["name"] for s in schedules} == {"retrain", "drift", "summary"}
    for schedule in schedules:
        assert schedule.inputs["state"] == "DISABLED", schedule.name
        assert "state" in schedule.ignore_changes, schedule.name


def test_release_is_told_to_enable_exactly_the_stacks_schedules(stack: OfflineRun) -> None:
    env = project_env(stack, "release")
    group = f"ml-delivery-{stack.stack}-jobs"
    refs = parse_schedule_names(env["SCHEDULE_NAMES"])
    assert sorted(str(r) for r in refs) == sorted(f"{group}/{job}" for job in ("retrain", "drift", "summary"))


def test_release_role_may_enable_only_those_schedules_and_pass_only_their_roles(stack: OfflineRun) -> None:
    policy = role_policy(stack, "delivery-release-role")
    actions = allowed_actions(policy)
    group = f"ml-delivery-{stack.stack}-jobs"
    arns = sorted(f"arn:aws:scheduler:us-east-1:{ACCOUNT}:schedule/{group}/{job}" for job in ("drift", "retrain",
                                                                                             "summary"))  # fmt: skip
    assert sorted(actions["scheduler:GetSchedule"]) == arns
    assert sorted(actions["scheduler:UpdateSchedule"]) == arns
    (pass_schedule_roles,) = [
        s for s in statements(policy)
        if "iam:PassRole" in s["Action"]
        and s.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService") == "scheduler.amazonaws.com"
    ]  # fmt: skip
    assert sorted(pass_schedule_roles["Resource"]) == sorted(
        f"arn:aws:iam::{ACCOUNT}:role/jobs-schedules-{job}-role-0a1b2c3" for job in ("drift", "retrain", "summary")
    )
    assert not any(a.startswith("scheduler:") and a not in {"scheduler:GetSchedule", "scheduler:UpdateSchedule"}
                   for a in actions)  # fmt: skip


def test_release_role_may_archive_only_package_keys(stack: OfflineRun) -> None:
    actions = allowed_actions(role_policy(stack, "delivery-release-role"))
    bucket = f"arn:aws:s3:::{stack.outputs['modelBucket']}"
    assert f"{bucket}/models/*/model.zip" in actions["s3:PutObject"]
    assert f"{bucket}/models/*" not in actions["s3:PutObject"]
