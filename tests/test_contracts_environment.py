"""The process environments (contracts/environment.py) as infra writes them: only what infra passes.

Found while integrating issue #15: ``EvaluateEnvironment(...)`` is a pydantic-settings class, whose constructor
also read the *Pulumi host's* environment, so the CodeBuild project's variables (and the plan) changed with
whoever ran ``pulumi up`` (``AWS_REGION`` of the operator's shell appeared in the Evaluate project).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.environment import (
    JOB_ENVIRONMENTS,
    AppEnvironment,
    EnvironmentConfigError,
    EvaluateEnvironment,
    ReleaseEnvironment,
)


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


# --- variables read by hand before issue #15 item 2, now through their class -------------------------------------


def test_max_data_bytes_reads_sizes_and_names_what_is_allowed() -> None:
    from contracts.environment import DEFAULT_MAX_DATA_BYTES, DataSizeEnvironment, RetrainEnvironment

    assert DataSizeEnvironment.from_env({}).max_data_bytes == DEFAULT_MAX_DATA_BYTES == 2 * 1024**3
    sizes = {"500M": 500 * 1024**2, "2G": 2 * 1024**3, "64KiB": 64 * 1024, " 1048576 ": 1048576}
    for text, expected in sizes.items():
        assert DataSizeEnvironment.from_env({"MAX_DATA_BYTES": text}).max_data_bytes == expected
    for bad in ("ten", "0", "-5", "2T"):
        with pytest.raises(EnvironmentConfigError) as refused:
            DataSizeEnvironment.from_env({"MAX_DATA_BYTES": bad})
        assert (
            str(refused.value) == f"MAX_DATA_BYTES={bad!r}: expected a positive size in bytes, e.g. 2G, 500M, 1048576"
        )
    # Retrain and the Evaluate stage read data through jobs_common.readers: both list the variable.
    assert "MAX_DATA_BYTES" in RetrainEnvironment.variables() and "MAX_DATA_BYTES" in EvaluateEnvironment.variables()


def test_ort_threads_is_bounded_and_named_in_each_wording() -> None:
    from contracts.environment import InferenceEnvironment, OnnxRuntimeEnvironment

    assert OnnxRuntimeEnvironment.from_env({}).ort_threads == 1
    assert OnnxRuntimeEnvironment.from_env({"ORT_THREADS": "4"}).ort_threads == 4
    with pytest.raises(EnvironmentConfigError, match=r"ORT_THREADS='many': expected a valid integer"):
        OnnxRuntimeEnvironment.from_env({"ORT_THREADS": "many"})
    with pytest.raises(EnvironmentConfigError, match=r"^ORT_THREADS=-1 is out of range; allowed 0 or more$"):
        AppEnvironment.from_env({"ORT_THREADS": "-1"})
    assert "ORT_THREADS" in InferenceEnvironment.variables()


def test_the_capture_hash_key_is_a_secret_never_written_or_shown() -> None:
    from contracts.environment import CapturePrivacyEnvironment, MonitorEnvironment

    key = "k" * 32
    for environment in (CapturePrivacyEnvironment, AppEnvironment, MonitorEnvironment):
        read = environment.from_env({"CAPTURE_HASH_KEY": key})
        assert read.capture_hash_key is not None and read.capture_hash_key.get_secret_value() == key
        assert key not in repr(read) and key not in str(read)  # a logged config does not carry the key
        with pytest.raises(ValueError, match="secrets"):
            read.to_env()  # infra injects it through `secrets`, never as a plain variable


def test_drift_min_rows_and_the_demo_dir_have_their_homes() -> None:
    from contracts.environment import DemoEnvironment, MonitorEnvironment

    assert MonitorEnvironment.from_env({}).drift_min_rows is None
    assert MonitorEnvironment.from_env({"DRIFT_MIN_ROWS": "20"}).drift_min_rows == 20
    with pytest.raises(EnvironmentConfigError, match=r"DRIFT_MIN_ROWS='lots': expected a valid integer"):
        MonitorEnvironment.from_env({"DRIFT_MIN_ROWS": "lots"})
    assert DemoEnvironment.from_env({}).demo_dir == "out/demo"
    assert DemoEnvironment.from_env({"DEMO_DIR": "/tmp/d"}).demo_dir == "/tmp/d"
    assert ReleaseEnvironment.from_env({"CODEBUILD_BUILD_ID": "p:1"}).codebuild_build_id == "p:1"
