"""Issue #16 item 3: prod shifts traffic with ECS's built-in CANARY (or LINEAR) strategy and rolls back on
alarms; stage keeps a rolling deploy. Under mocks, from the real Pulumi.<stack>.yaml."""

from __future__ import annotations

import json

import pytest

from contracts.prediction_metrics import NAMESPACE as PREDICTION_NAMESPACE
from contracts.prediction_metrics import SCORE_SHIFT_METRIC, SERVICE_DIMENSION, SERVICE_NAME_ENV
from infra.settings import ConfigError
from tests.infra.plan_queries import role_policy, statements
from tools.plan.offline import OfflineRun, run_offline

SERVICE = "aws:ecs/service:Service"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE = "aws:lb/listenerRule:ListenerRule"
TG = "aws:lb/targetGroup:TargetGroup"


def _alarm_names(run: OfflineRun, service: str) -> dict[str, str]:
    """Alarm resource suffix -> the physical name the service's ``alarms`` refer to."""
    return {a.name.removeprefix(f"{service}-"): a.inputs.get("name", f"{a.name}-0a1b2c3")
            for a in run.of_type(ALARM) if a.name.startswith(f"{service}-")}  # fmt: skip


def test_prod_canary_with_bake_times_from_the_stack(stack: OfflineRun) -> None:
    prod = stack.one(SERVICE, "prod-service").inputs
    assert prod["deploymentController"] == {"type": "ECS"}
    configuration = prod["deploymentConfiguration"]
    assert configuration["strategy"] == "CANARY"
    assert configuration["canaryConfiguration"] == {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": "10"}
    assert configuration["bakeTimeInMinutes"] == "10"
    assert "linearConfiguration" not in configuration


def test_stage_keeps_rolling(stack: OfflineRun) -> None:
    stage = stack.one(SERVICE, "stage-service")
    assert stage.inputs["deploymentConfiguration"] == {"strategy": "ROLLING"}
    assert "advancedConfiguration" not in stage.inputs["loadBalancers"][0]
    assert not [r for r in stack.of_type(RULE) if r.name.startswith("stage-")]
    assert not [r for r in stack.of_type(TG) if r.name == "stage-tg-alt"]


def test_linear_by_stack_key_with_its_steps() -> None:
    keys = {"prodDeploymentStrategy": "LINEAR", "linearStepPercent": 20, "linearStepBakeMinutes": 3}
    run = run_offline("dev", overrides={f"ml-delivery:{k}": v for k, v in keys.items()})
    configuration = run.one(SERVICE, "prod-service").inputs["deploymentConfiguration"]
    assert configuration["strategy"] == "LINEAR"
    assert configuration["linearConfiguration"] == {"stepPercent": 20.0, "stepBakeTimeInMinutes": "3"}
    assert "canaryConfiguration" not in configuration


def test_unknown_strategy_is_refused_with_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="prodDeploymentStrategy") as error:
        run_offline("dev", overrides={"ml-delivery:prodDeploymentStrategy": "BLUE_GREEN"})
    assert "CANARY" in str(error.value) and "LINEAR" in str(error.value)


def test_prod_rolls_back_on_5xx_latency_and_prediction_shift(stack: OfflineRun) -> None:
    prod = stack.one(SERVICE, "prod-service").inputs
    names = _alarm_names(stack, "prod")
    assert prod["alarms"]["enable"] is True and prod["alarms"]["rollback"] is True
    assert sorted(prod["alarms"]["alarmNames"]) == sorted(names[s] for s in ("5xx", "p99-latency", "score-shift"))
    for suffix in ("5xx", "p99-latency"):
        alarm = stack.one(ALARM, f"prod-{suffix}").inputs
        # Per load balancer: the canary serves from the alternate target group, ECS swaps them each deploy.
        assert set(alarm["dimensions"]) == {"LoadBalancer"}
    shift = stack.one(ALARM, "prod-score-shift").inputs
    assert (shift["namespace"], shift["metricName"]) == (PREDICTION_NAMESPACE, SCORE_SHIFT_METRIC)
    assert shift["dimensions"] == {"Service": "prod"} and shift["statistic"] == "Maximum"
    assert shift["threshold"] == 0.15 and shift["comparisonOperator"] == "GreaterThanThreshold"
    assert shift["alarmActions"] == [stack.outputs["alertsTopicArn"]]


def test_the_app_names_its_metrics_with_the_service_the_score_shift_alarm_watches(stack: OfflineRun) -> None:
    """The EMF Service dimension comes from SERVICE_NAME_ENV on the task definition; the alarm must match it."""
    for service in ("stage", "prod"):
        task = stack.one("aws:ecs/taskDefinition:TaskDefinition", f"{service}-task").inputs
        (container,) = json.loads(task["containerDefinitions"])
        env = {e["name"]: e["value"] for e in container["environment"]}
        alarm = stack.one(ALARM, f"{service}-score-shift").inputs
        assert alarm["dimensions"] == {SERVICE_DIMENSION: env[SERVICE_NAME_ENV]} == {SERVICE_DIMENSION: service}


def test_alternate_target_group_and_production_rule_that_ecs_shifts(stack: OfflineRun) -> None:
    lb = stack.one(SERVICE, "prod-service").inputs["loadBalancers"][0]
    primary, alternate = stack.one(TG, "prod-tg"), stack.one(TG, "prod-tg-alt")
    for key in ("port", "protocol", "targetType", "healthCheck"):
        assert primary.inputs[key] == alternate.inputs[key]
    advanced = lb["advancedConfiguration"]
    assert lb["targetGroupArn"].endswith(primary.name + "-0a1b2c3/73e2d6bc24d8a067")
    assert advanced["alternateTargetGroupArn"].split("/")[1] == "prod-tg-alt-0a1b2c3"
    rule = stack.one(RULE, "prod-production-rule")
    assert advanced["productionListenerRule"].split("/")[2] == "prod-production-rule-0a1b2c3"
    listener = "prod-https" if stack.stack == "prod" else "prod-http"
    assert rule.inputs["listenerArn"].split("/")[2] == f"{listener}-0a1b2c3"
    forward = rule.inputs["actions"][0]["forward"]["targetGroups"]
    assert [(t["arn"].split("/")[1], t["weight"]) for t in forward] == [
        ("prod-tg-0a1b2c3", 100), ("prod-tg-alt-0a1b2c3", 0)]  # fmt: skip
    # ECS owns the weights after the first deployment; Pulumi must not swing traffic back.
    assert rule.ignore_changes == ["actions"]
    assert stack.one(SERVICE, "prod-service").ignore_changes == ["desiredCount", "loadBalancers"]


def test_infrastructure_role_touches_only_this_services_load_balancer_pieces(stack: OfflineRun) -> None:
    advanced = stack.one(SERVICE, "prod-service").inputs["loadBalancers"][0]["advancedConfiguration"]
    role = stack.one("aws:iam/role:Role", "prod-ecs-lb-role")
    assert advanced["roleArn"].endswith("/prod-ecs-lb-role-0a1b2c3")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs.amazonaws.com"}
    by_sid = {s["Sid"]: s for s in statements(role_policy(stack, "prod-ecs-lb-role"))}
    tgs = sorted(s["Resource"] for s in [by_sid["RegisterTasks"]])[0]
    assert sorted(t.split("/")[1] for t in tgs) == ["prod-tg-0a1b2c3", "prod-tg-alt-0a1b2c3"]
    assert by_sid["ShiftProductionTraffic"]["Action"] == ["elasticloadbalancing:ModifyRule"]
    assert by_sid["ShiftProductionTraffic"]["Resource"] == [advanced["productionListenerRule"]]
    assert by_sid["ReadLoadBalancer"]["Resource"] == ["*"]
    assert all(a.startswith("elasticloadbalancing:Describe") for a in by_sid["ReadLoadBalancer"]["Action"])
    # The service is created only once its role may act (ECS validates the role at CreateService).
    service = stack.one(SERVICE, "prod-service")
    assert stack.one("aws:iam/rolePolicy:RolePolicy", "prod-ecs-lb-role-policy").urn in service.dependencies


def test_bake_times_that_outlast_the_pipelines_deploy_action_are_refused() -> None:
    """The ECS deploy action waits at most 60 minutes; a longer canary would fail the run while ECS goes on."""
    with pytest.raises(ConfigError, match="canaryBakeMinutes") as error:
        run_offline("dev", overrides={"ml-delivery:canaryBakeMinutes": 40, "ml-delivery:deploymentBakeMinutes": 20})
    assert "60-minute" in str(error.value)
    keys = {"prodDeploymentStrategy": "LINEAR", "linearStepPercent": 10, "linearStepBakeMinutes": 6}
    with pytest.raises(ConfigError, match="linearStepBakeMinutes"):
        run_offline("dev", overrides={f"ml-delivery:{k}": v for k, v in keys.items()})


def test_cost_shows_the_canary_overlap_the_cache_and_the_emf_metrics(prod: OfflineRun) -> None:
    from tools.plan import plan_cost

    items = {i.item: i for i in plan_cost.estimate(prod).items}
    overlap = items["Fargate prod-service canary overlap"]
    assert "25 min × 3 extra tasks" in overlap.quantity  # 10 canary + 10 bake + 5 task start, 3 prod tasks
    assert "Fargate stage-service canary overlap" not in items
    assert items["CloudWatch custom metrics (app EMF)"].quantity == "4 metrics"
    assert items["ECR BuildKit registry cache"].monthly_usd > 0
    longer = {i.item: i for i in plan_cost.estimate(run_offline("prod", overrides={
        "ml-delivery:canaryBakeMinutes": 30})).items}  # fmt: skip
    assert longer["Fargate prod-service canary overlap"].monthly_usd > overlap.monthly_usd
