"""The process environments (contracts/environment.py) as infra writes them: only what infra passes.

Found while integrating issue #15: ``EvaluateEnvironment(...)`` is a pydantic-settings class, whose constructor
also read the *Pulumi host's* environment, so the CodeBuild project's variables (and the plan) changed with
whoever ran ``pulumi up`` (``AWS_REGION`` of the operator's shell appeared in the Evaluate project).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.environment import JOB_ENVIRONMENTS, AppEnvironment, EvaluateEnvironment, ReleaseEnvironment


@pytest.mark.parametrize(
    "environment", [AppEnvironment, EvaluateEnvironment, ReleaseEnvironment, *JOB_ENVIRONMENTS.values()]
)
def test_the_writers_environment_never_leaks_into_what_it_writes(
    environment: type[AppEnvironment], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in environment.variables():
        monkeypatch.setenv(variable, "from-the-operators-shell")
    assert environment().to_env() == {}


def test_from_env_still_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("EVALUATION_SMOKE_REQUESTS", "7")
    read = EvaluateEnvironment.from_env()
    assert (read.aws_region, read.evaluation_smoke_requests) == ("eu-west-1", 7)
    assert read.to_env() == {"AWS_REGION": "eu-west-1", "EVALUATION_SMOKE_REQUESTS": "7"}


def test_a_misspelt_field_in_what_infra_writes_is_refused_not_dropped() -> None:
    # With extra="ignore" the variable silently vanished from the task definition (the app then fell back to
    # its default: no S3 capture); the writer must fail the plan instead.
    with pytest.raises(ValidationError, match="capture_s3_ur"):
        AppEnvironment(capture_s3_ur="s3://bucket/capture/prod")  # type: ignore[call-arg]


def _defaults_differing(wrapper: type, environment: type[AppEnvironment], renamed: dict[str, str]) -> list[str]:
    """Fields a process's own settings class shares with its environment class whose defaults disagree."""
    import dataclasses

    problems = []
    for field in dataclasses.fields(wrapper):
        name = renamed.get(field.name, field.name)
        if name in environment.model_fields and field.default is not dataclasses.MISSING:
            contract_default = environment.model_fields[name].default
            if field.default != contract_default and not isinstance(field.default, tuple):
                problems.append(f"{wrapper.__name__}.{field.name}={field.default!r} vs {name}={contract_default!r}")
    return problems


def test_the_processes_own_settings_classes_keep_the_contracts_defaults() -> None:
    # The wrappers (AppConfig, retrain's Settings, EvaluationSettings) restate the defaults of their
    # environment class; a default changed in one place only would make infra and the process disagree.
    from app.config import AppConfig
    from contracts.environment import RetrainEnvironment
    from evaluation.settings import _FROM_ENVIRONMENT, EvaluationSettings
    from retrain.settings import Settings

    assert _defaults_differing(AppConfig, AppEnvironment, {}) == []
    assert _defaults_differing(Settings, RetrainEnvironment, {}) == []
    assert _defaults_differing(EvaluationSettings, EvaluateEnvironment, dict(_FROM_ENVIRONMENT)) == []
