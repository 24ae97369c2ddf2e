"""BatchJobs takes narrow typed arguments (issue #15 item 4): no module of ``infra/jobs`` reads the stack
settings; ``stack.py`` hands it a ``JobsConfig`` of plain values, and that config alone writes the jobs'
environment and sizes."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from tools.plan.offline import load_stack_config

ROOT = Path(__file__).resolve().parents[2]
JOBS_PACKAGE = ROOT / "infra" / "jobs"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its dotted name (``from a.b import c`` counts as ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_jobs_module_reads_the_stack_settings() -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m == "infra.settings" or m.startswith("infra.lib.stack"))
        for path in sorted(JOBS_PACKAGE.glob("*.py"))
    }
    offenders = {name: modules for name, modules in offenders.items() if modules}
    assert not offenders, f"infra/jobs must take JobsConfig from stack.py, not the settings or Platform: {offenders}"


def test_args_classes_carry_no_settings_object() -> None:
    from infra.jobs.jobs import BatchJobsArgs
    from infra.jobs.jobs_iam import JobGrants

    for cls in (BatchJobsArgs, JobGrants):
        names = {f.name for f in dataclasses.fields(cls)}
        assert "settings" not in names, f"{cls.__name__} still takes the whole settings: {sorted(names)}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_jobs_config_carries_each_value_from_the_stack_settings(stack: str) -> None:
    from infra.jobs.jobs_spec import JobsConfig
    from infra.settings import parse_settings
    from infra.stack import jobs_config

    settings = parse_settings(load_stack_config(stack)[0])
    config = jobs_config(settings)
    assert isinstance(config, JobsConfig)
    for field in dataclasses.fields(JobsConfig):
        assert getattr(config, field.name) == getattr(settings, field.name), field.name


def test_environment_and_sizes_come_from_the_config_alone() -> None:
    """Built without any StackSettings: every value the jobs read is in JobsConfig."""
    from infra.jobs.jobs_spec import JobsConfig, Resolved, container_properties, timeout_seconds

    config = JobsConfig(
        log_retention_days=30,
        jobs_image_tag="abc123",
        schedule_timezone="Europe/Paris",
        retrain_schedule="rate(7 days)",
        drift_schedule="rate(1 day)",
        summary_schedule="rate(15 minutes)",
        retrain_vcpu=2.0,
        retrain_memory_mib=8192,
        retrain_timeout_minutes=45,
        jobs_vcpu=0.5,
        jobs_memory_mib=1024,
        training_data_prefix="labelled/",
        model_key="m.zip",
        gate_metric="auc",
        gate_tolerance=0.01,
        gate_floor=0.7,
        min_training_rows=900,
        alert_window_minutes=60,
        drift_retrain_enabled=True,
        summary_min_count=3,
    )
    resolved = Resolved(
        image="img:abc123",
        job_role_arn="arn:role/job",
        execution_role_arn="arn:role/exec",
        log_group="/ml-delivery/dev/jobs",
        region="eu-west-1",
        model_bucket="models",
        capture_bucket="capture",
        alerts_topic_arn="arn:sns:alerts",
        job_queue="arn:queue",
        retrain_job_definition="ml-delivery-dev-retrain",
    )
    retrain = container_properties(config, "retrain", resolved)
    env = {e["name"]: e["value"] for e in retrain["environment"]}
    assert env["DATA_URI"] == "s3://models/labelled/"
    assert env["MODEL_KEY"] == "m.zip"
    assert (env["GATE_METRIC"], env["GATE_TOLERANCE"], env["GATE_FLOOR"]) == ("auc", "0.01", "0.7")
    assert env["MIN_ROWS"] == "900"
    assert env["ALERT_WINDOW_MINUTES"] == "60"
    assert retrain["resourceRequirements"] == [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "8192"}]
    assert timeout_seconds(config, "retrain") == 45 * 60

    summary = container_properties(config, "summary", resolved)
    env = {e["name"]: e["value"] for e in summary["environment"]}
    assert env["SUMMARY_WINDOW_MINUTES"] == "15"
    assert env["SUMMARY_MIN_COUNT"] == "3"
    assert env["DRIFT_RETRAIN_ENABLED"].lower() == "true"
    assert summary["resourceRequirements"] == [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}]
