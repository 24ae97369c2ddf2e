"""Typed stack configuration: both real stack files parse, and every bad value names itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.settings import SECRET_KEYS, ConfigError, StackSettings, parse_settings, validate_schedule_expression
from tools.plan.offline import load_stack_config, run_offline

ROOT = Path(__file__).resolve().parents[2]


def settings_for(stack: str, **changes: object) -> StackSettings:
    config, _ = load_stack_config(stack)
    for key, value in changes.items():
        full = f"ml-delivery:{key}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value if isinstance(value, str) else __import__("json").dumps(value)
    return parse_settings(config)


def test_both_stack_files_parse() -> None:
    dev, prod = settings_for("dev"), settings_for("prod")
    assert dev.environment == "dev" and prod.environment == "prod"


def test_prod_differs_from_dev_where_a_platform_team_wants_it() -> None:
    dev, prod = settings_for("dev"), settings_for("prod")
    assert prod.az_count >= 2 and prod.nat_gateways >= 2 and dev.nat_gateways == 1
    assert prod.prod_desired_count >= 2 and prod.stage_desired_count >= 2
    assert prod.deletion_protection and not dev.deletion_protection
    assert prod.log_retention_days >= 365 > dev.log_retention_days


@pytest.mark.parametrize(
    ("stack", "key", "value", "expected"),
    [
        ("dev", "vpcCidr", "10.0.0.1/16", "host bits"),
        ("dev", "vpcCidr", "10.0.0.0/8", "between /16 and /24"),
        ("dev", "vpcCidr", "not-a-cidr", "IPv4 CIDR"),
        ("dev", "azCount", 1, "greater than or equal to 2"),
        ("dev", "azCount", 7, "less than or equal to 4"),
        ("dev", "natGateways", 3, "at most azCount"),
        ("dev", "taskMemory", 3000, "Fargate offers memory 1024..4096"),
        ("dev", "taskCpu", 300, "Fargate offers cpu units"),
        ("prod", "prodDesiredCount", 1, "at least 2 in a prod stack"),
        ("dev", "prodMaxCount", 0, "greater than or equal to 1"),
        ("prod", "prodMaxCount", 2, "at least prodDesiredCount (3)"),
        ("prod", "natGateways", 1, "at least 2 in prod"),
        ("prod", "deletionProtection", False, "true in prod"),
        ("prod", "logRetentionDays", 30, "at least 365 in prod"),
        ("dev", "logRetentionDays", 10, "CloudWatch Logs accepts only"),
        ("dev", "alertEmails", ["oncall-at-example.com"], "not e-mail addresses"),
        ("dev", "alertSmsNumbers", ["0800 123"], "not E.164"),
        ("dev", "ingressCidrs", [], "at least one CIDR"),
        ("dev", "ingressCidrs", ["10.1.2.3/8"], "host bits"),
        ("dev", "certificateArn", "arn:aws:iam::123456789012:server-certificate/x", "ACM certificate ARN"),
        ("dev", "containerName", "app name!", "should match pattern"),
        ("dev", "modelKey", "model.tar.gz", "should match pattern"),
        ("dev", "environment", "staging", "'dev' or 'prod'"),
        ("dev", "environment", None, "the key is required"),
        ("dev", "colour", "blue", "unknown key"),
        ("dev", "retrainSchedule", "cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("dev", "driftSchedule", "rate(1 days)", "use 'day' for a value of 1"),
        ("dev", "summarySchedule", "hourly", "allowed forms"),
        ("dev", "retrainMemoryMib", 1000, "Batch on Fargate offers memory 2048..8192"),
        ("dev", "retrainVcpu", 3, "offers vCPU"),
        ("dev", "sourceProvider", "codeconnections", "needs connectionArn and fullRepositoryId"),
        ("dev", "connectionArn", "arn:aws:codecommit:us-east-1:123456789012:repo", "CodeConnections ARN"),
        ("dev", "branch", "feature//x", "not a valid git branch name"),
        ("dev", "gateMetric", "accuracy", "binary: roc_auc, log_loss, lift"),
        ("dev", "gateFloor", 0.2, "needs ml-delivery:gateMetric"),
    ],
)
def test_invalid_value_names_key_value_and_what_is_allowed(stack: str, key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_for(stack, **{key: value})
    message = str(caught.value)
    assert f"ml-delivery:{key}" in message
    assert expected in message
    if value is not None and not isinstance(value, list):
        assert str(value).lower() in message.lower()


@pytest.mark.parametrize(
    "expression",
    ["rate(1 day)", "rate(10 minutes)", "cron(0 3 ? * MON *)", "cron(15 10 * * ? 2027)", "at(2027-01-01T00:00:00)"],
)
def test_schedule_expressions_aws_accepts(expression: str) -> None:
    assert validate_schedule_expression(expression) == expression


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(1 days)", "use 'day' for a value of 1"),
        ("rate(5 minute)", "'minutes' otherwise"),
        ("rate(0 hours)", "at least 1"),
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 * *)", "needs 6 fields"),
        ("every day", "allowed forms"),
    ],
)
def test_malformed_schedule_expressions_are_rejected(expression: str, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate_schedule_expression(expression)


def test_bad_config_stops_the_program_before_any_resource() -> None:
    with pytest.raises(ConfigError, match="ml-delivery:taskMemory"):
        run_offline("dev", overrides={"ml-delivery:taskMemory": 3000})


def test_every_settings_key_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    keys = [field.alias for field in StackSettings.model_fields.values()] + sorted(SECRET_KEYS)
    missing = [key for key in keys if f"`{key}`" not in readme]
    assert not missing, f"README configuration reference lacks {missing}"


def test_readme_configuration_reference_matches_the_code() -> None:
    from tools.plan.config_reference import END, START, render_table

    readme = (ROOT / "README.md").read_text()
    section = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == render_table(), "README is stale: run `make docs`"
