"""DeliveryPipeline takes narrow typed arguments (issue #15 item 4): no module of ``infra/pipeline`` reads the
stack settings; ``stack.py`` hands it a ``PipelineConfig`` of plain values, and that config alone writes the
pipeline's build and Evaluate settings."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from tools.plan.offline import load_stack_config

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_PACKAGE = ROOT / "infra" / "pipeline"
# The one name infra/pipeline may still import from infra.settings: a Literal alias used only as a type
# (infra/settings.py defines it and validates against it; infra/lib/stack_types.py imports infra.settings, so the
# alias cannot move there without a cycle).
LITERAL_ALIASES = {"SourceProvider"}


def settings_imports(path: Path) -> set[str]:
    """The names ``path`` imports from ``infra.settings`` (``import infra.settings`` counts as ``*``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {"*" for alias in node.names if alias.name == "infra.settings"}
        elif isinstance(node, ast.ImportFrom) and node.module == "infra.settings":
            found |= {alias.name for alias in node.names}
    return found


def test_no_pipeline_module_reads_the_stack_settings() -> None:
    offenders = {
        path.name: sorted(settings_imports(path) - LITERAL_ALIASES) for path in sorted(PIPELINE_PACKAGE.glob("*.py"))
    }
    offenders = {name: names for name, names in offenders.items() if names}
    assert not offenders, f"infra/pipeline must take PipelineConfig from stack.py, not the settings: {offenders}"


def test_args_carry_no_settings_object() -> None:
    from infra.pipeline.pipeline import DeliveryPipelineArgs

    names = {f.name for f in dataclasses.fields(DeliveryPipelineArgs)}
    assert "settings" not in names, f"DeliveryPipelineArgs still takes the whole settings: {sorted(names)}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pipeline_config_carries_each_value_from_the_stack_settings(stack: str) -> None:
    from infra.pipeline.pipeline import PipelineConfig
    from infra.settings import parse_settings
    from infra.stack import pipeline_config

    settings = parse_settings(load_stack_config(stack)[0])
    config = pipeline_config(settings, stack)
    assert isinstance(config, PipelineConfig)
    for field in dataclasses.fields(PipelineConfig):
        # repository_name is the resolved name (the key, or the per-stack default when the key is unset).
        expected = (
            settings.repository_name_for(stack) if field.name == "repository_name" else getattr(settings, field.name)
        )
        assert getattr(config, field.name) == expected, field.name
    assert config.repository_name  # never the unset None of the settings key


def test_evaluate_environment_comes_from_the_config_alone() -> None:
    """Built without any StackSettings: the Evaluate action's thresholds and gate are in PipelineConfig."""
    from infra.jobs.jobs_spec import gate_environment
    from infra.pipeline.pipeline import PipelineConfig, evaluation_environment

    config = PipelineConfig(
        source_provider="codecommit",
        repository_name="ml-delivery-dev",
        branch="release",
        connection_arn=None,
        full_repository_id=None,
        deletion_protection=False,
        internal_stage=True,
        log_retention_days=30,
        build_compute_type="BUILD_GENERAL1_MEDIUM",
        build_timeout_minutes=90,
        container_name="app",
        model_key="m.zip",
        training_data_prefix="labelled/",
        gate_metric="auc",
        gate_tolerance=0.01,
        gate_floor=None,
        evaluation_min_agreement=0.95,
        evaluation_max_score_psi=0.3,
        evaluation_max_segment_shift=0.2,
        evaluation_max_stage_difference=0.001,
        evaluation_max_p99_latency_ms=500,
        evaluation_replay_sample_size=3000,
        evaluation_replay_window_hours=24,
        evaluation_smoke_requests=12,
        evaluation_timeout_minutes=40,
        approval_timeout_minutes=120,
    )
    env = evaluation_environment(config)
    assert env["EVALUATION_MIN_AGREEMENT"] == "0.95"
    assert env["EVALUATION_MAX_P99_LATENCY_MS"] == "500"
    assert env["EVALUATION_REPLAY_SAMPLE_SIZE"] == "3000"
    assert env["EVALUATION_SMOKE_REQUESTS"] == "12"
    gate = gate_environment(config)
    assert gate == {"GATE_METRIC": "auc", "GATE_TOLERANCE": "0.01"}, json.dumps(gate)
