"""The plan as a review tool: a diagram generated from the plan, a stack diff, a cost estimate."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tools.plan import plan_cost, plan_diagram, plan_diff
from tools.plan.offline import OfflineRun, run_offline
from tools.plan.plan import main

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("Source", "Build", "DeployStage", "Evaluate", "Approval", "DeployProd", "Release")


def test_diagram_shows_every_pipeline_stage_in_order_and_both_services(stack: OfflineRun) -> None:
    diagram = plan_diagram.render(stack)
    assert diagram.startswith("flowchart LR\n")
    positions = [diagram.index(f'stage_{name}["{name}') for name in STAGES]
    assert positions == sorted(positions)
    for earlier, later in itertools.pairwise(STAGES):
        assert f"stage_{earlier} --> stage_{later}" in diagram
    assert "stage_DeployStage -->|deploys| stage_service" in diagram
    assert "stage_DeployProd -->|deploys| prod_service" in diagram
    assert "stage_Evaluate -.->|smoke + latency| stage_service" in diagram
    assert "stage_Evaluate -->|evaluation report| buckets_models" in diagram
    assert '-->|"EventBridge: model.zip created"| delivery_pipeline' in diagram
    assert '-->|"EventBridge: push to main"| delivery_pipeline' in diagram
    for job in ("retrain", "drift", "summary", "inference"):
        assert f"jobs_{job}" in diagram


def test_diagram_follows_the_plan_not_a_drawing() -> None:
    run = run_offline("dev", overrides={"ml-delivery:modelKey": "models/current.zip", "ml-delivery:branch": "release"})
    diagram = plan_diagram.render(run)
    assert "EventBridge: models/current.zip created" in diagram
    assert "EventBridge: push to release" in diagram


def test_readme_embeds_the_generated_diagram(dev: OfflineRun) -> None:
    readme = (ROOT / "README.md").read_text()
    embedded = readme.split(plan_diagram.START, 1)[1].split(plan_diagram.END, 1)[0]
    assert embedded.strip() == f"```mermaid\n{plan_diagram.render(dev)}```", "run `make diagram`"
    assert (ROOT / "docs" / "diagram.mmd").read_text() == plan_diagram.render(dev)


def test_cost_total_is_the_sum_of_its_items(stack: OfflineRun) -> None:
    estimate = plan_cost.estimate(stack)
    assert len(estimate.items) >= 10
    assert estimate.total == pytest.approx(round(sum(i.monthly_usd for i in estimate.items), 2))
    text = plan_cost.render(estimate)
    assert text.splitlines()[-3].split()[-1] == f"{estimate.total:.2f}"
    assert "Excluded: Data transfer" in text and "as of 2026-11-01" in text


def _item(estimate: plan_cost.CostEstimate, prefix: str) -> float:
    return sum(i.monthly_usd for i in estimate.items if i.item.startswith(prefix))


def test_more_nat_gateways_and_tasks_cost_more(prod: OfflineRun) -> None:
    base = plan_cost.estimate(prod)
    fewer_nats = plan_cost.estimate(run_offline("prod", overrides={"ml-delivery:natGateways": 2}))
    assert _item(fewer_nats, "NAT gateways") < _item(base, "NAT gateways")
    assert fewer_nats.total < base.total
    more_tasks = plan_cost.estimate(run_offline("prod", overrides={"ml-delivery:prodDesiredCount": 6}))
    assert _item(more_tasks, "Fargate prod-service") == pytest.approx(2 * _item(base, "Fargate prod-service"), abs=0.02)
    assert more_tasks.total > base.total


def test_prod_costs_more_than_dev(dev: OfflineRun, prod: OfflineRun) -> None:
    assert plan_cost.estimate(prod).total > plan_cost.estimate(dev).total


@pytest.mark.parametrize(
    ("expression", "runs"),
    [("rate(1 day)", 30.4), ("rate(10 minutes)", 4380), ("cron(0 3 ? * MON *)", 4.35), ("cron(0 */6 * * ? *)", 121.7),
     ("at(2027-01-01T00:00:00)", 0)],
)  # fmt: skip
def test_schedule_runs_per_month(expression: str, runs: float) -> None:
    assert plan_cost.runs_per_month(expression) == pytest.approx(runs, rel=0.01)


def test_diff_shows_what_differs_between_stacks(dev: OfflineRun, prod: OfflineRun) -> None:
    result = plan_diff.diff(dev, prod)
    assert ("aws:ec2/natGateway:NatGateway", "network-nat-2") in result.only_right
    service = result.changed[("aws:ecs/service:Service", "prod-service")]
    assert any(c.path == "desiredCount" and (c.left, c.right) == (1, 3) for c in service)
    assert ("aws:s3/bucketPolicy:BucketPolicy", "buckets-models-tls-only") not in result.changed
    assert plan_diff.diff(dev, dev).is_empty
    text = plan_diff.render(result)
    assert "+ aws:ec2/natGateway:NatGateway  network-nat-2  (only in prod)" in text


def test_cli_review_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "dev", "--cost"]) == 0
    assert "Total" in capsys.readouterr().out
    assert main(["--stack", "dev", "--diff", "prod"]) == 0
    assert "Stack dev → stack prod" in capsys.readouterr().out
    assert main(["--stack", "prod", "--diagram"]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")


def test_cost_shows_the_evaluate_project(stack: OfflineRun) -> None:
    """Issue #16: `--cost` keeps showing the added pieces; the Evaluate CodeBuild project is priced per run."""
    estimate = plan_cost.estimate(stack)
    (item,) = [i for i in estimate.items if i.item == "CodeBuild delivery-evaluate-project"]
    assert "× 4 min (BUILD_GENERAL1_SMALL)" in item.quantity and item.monthly_usd > 0
