"""Runtime settings: file and SSM sources, refresh, and a bad value never replacing a good one."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import httpx
import pytest

from app.runtime_settings import FileSettingsSource, RuntimeSettings, SettingsRefresher, SsmSettingsSource
from tests.app.conftest import TrainedPackage, post_json
from tests.support.servers import wait_until


def test_file_source_absent_means_defaults_and_bad_values_keep_last_good(tmp_path: Path, caplog) -> None:
    path = tmp_path / "settings.json"
    refresher = SettingsRefresher(FileSettingsSource(path), interval=60)
    assert refresher.refresh() == RuntimeSettings()
    path.write_text(json.dumps({"decision_threshold": 0.8, "out_of_range": "reject", "capture_enabled": False}))
    good = refresher.refresh()
    assert good == RuntimeSettings(decision_threshold=0.8, out_of_range="reject", capture_enabled=False)
    for bad in (
        {"decision_threshold": 1.5},
        {"out_of_range": "ignore"},
        {"capture_enabled": "yes"},
        {"decision_treshold": 0.2},
        [],
    ):
        path.write_text(json.dumps(bad))
        assert refresher.refresh() == good
        assert refresher.last_error
    path.write_text("{not json")
    assert refresher.refresh() == good
    assert "keeping the last good ones" in caplog.text
    path.write_text(json.dumps({"decision_threshold": 1}))
    assert refresher.refresh().decision_threshold == 1.0 and refresher.last_error is None


def test_ssm_source_against_moto(moto_server) -> None:
    client = boto3.client("ssm", endpoint_url=moto_server.endpoint_url)
    name = f"/ml-delivery/test-{uuid.uuid4().hex[:8]}/prod/runtime"
    refresher = SettingsRefresher(SsmSettingsSource(name, client), interval=60)
    assert refresher.refresh() == RuntimeSettings()  # no parameter yet
    client.put_parameter(Name=name, Value=json.dumps({"decision_threshold": 0.3}), Type="String")
    assert refresher.refresh().decision_threshold == 0.3
    client.put_parameter(Name=name, Value=json.dumps({"decision_threshold": -1}), Type="String", Overwrite=True)
    assert refresher.refresh().decision_threshold == 0.3
    assert "decision_threshold" in (refresher.last_error or "")


def test_running_app_picks_up_threshold_and_policy_without_restart(
    trained: TrainedPackage, app_process, tmp_path: Path
) -> None:
    settings = tmp_path / "runtime.json"
    app = app_process(trained.path, env={"SETTINGS_SOURCE": f"file:{settings}", "SETTINGS_REFRESH_SECONDS": "0.1"})
    records = trained.records[:40]
    _, _, body = post_json(app.url, records)
    assert {p["prediction"] for p in body["predictions"]} == {0, 1}  # default 0.5 splits this sample
    settings.write_text(json.dumps({"decision_threshold": 0.0}))
    wait_until(lambda: httpx.get(f"{app.url}/model").json()["settings"]["decision_threshold"] == 0.0, 30, "refresh")
    _, _, body = post_json(app.url, records)
    assert {p["prediction"] for p in body["predictions"]} == {1}
    spec = next(f for f in trained.manifest.features if f.is_numeric and f.maximum is not None)
    outside = {**records[0], spec.name: (int if spec.dtype == "int" else float)(spec.maximum + 1000)}
    assert post_json(app.url, outside)[0] == 200
    settings.write_text(json.dumps({"decision_threshold": 0.0, "out_of_range": "reject"}))
    wait_until(lambda: httpx.get(f"{app.url}/model").json()["settings"]["out_of_range"] == "reject", 30, "refresh")
    status, _, body = post_json(app.url, outside)
    assert status == 422 and body["violations"][0]["kind"] == "out_of_range"
    settings.write_text(json.dumps({"decision_threshold": "high"}))  # refused: the running values stay
    wait_until(lambda: "decision_threshold" in app.log() and "rejected" in app.log(), 30, "rejection logged")
    assert httpx.get(f"{app.url}/model").json()["settings"]["out_of_range"] == "reject"
    assert app.terminate()


def test_app_config_defaults_are_the_environment_contract_defaults() -> None:
    """AppConfig built in code and AppConfig read from an empty environment are the same process."""
    from typing import get_args

    from app.capture.writer import OVERFLOW_POLICIES
    from app.config import AppConfig
    from contracts.environment import AppEnvironment

    assert AppConfig.from_env({}) == AppConfig()
    overflow = AppEnvironment.model_fields["capture_spool_overflow"].annotation
    assert set(get_args(overflow)) == set(OVERFLOW_POLICIES)


def test_app_environment_errors_name_the_variable_the_value_and_what_is_allowed() -> None:
    from app.config import AppConfig, ConfigError

    cases = {
        "PORT": ("x", "PORT='x' is not an integer; allowed 1..65535"),
        "WORKERS": ("99", "WORKERS=99 is out of range; allowed 1..64"),
        "SERVICE_NAME": ("dev", "SERVICE_NAME='dev': allowed 'stage', 'prod' or 'local'"),
        "ALLOW_PICKLE": ("maybe", "ALLOW_PICKLE='maybe': allowed 1/0 (or true/false)"),
        "MAX_BATCH_WAIT_MS": ("soon", "MAX_BATCH_WAIT_MS='soon' is not a number; allowed 0..1000"),
        "CAPTURE_SPOOL_OVERFLOW": ("drop_all", "CAPTURE_SPOOL_OVERFLOW='drop_all': allowed 'drop_oldest' or"),
    }
    for variable, (value, message) in cases.items():
        with pytest.raises(ConfigError) as caught:
            AppConfig.from_env({variable: value})
        assert message in str(caught.value), (variable, str(caught.value))


def test_the_task_definition_environment_is_what_the_app_reads() -> None:
    """infra writes the container environment from AppEnvironment; the app reads every variable back."""
    from app.config import AppConfig
    from contracts.environment import AppEnvironment
    from infra.service.model_service import capture_environment

    written = AppEnvironment(**capture_environment(2), service_name="prod", port=8080, workers=2,
                             settings_refresh_seconds=30, log_level="INFO").to_env()  # fmt: skip
    assert written["SETTINGS_REFRESH_SECONDS"] == "30" and written["CAPTURE_EMF_SECONDS"] == "60"
    config = AppConfig.from_env(written)
    assert (config.service_name, config.workers, config.capture_emf_seconds) == ("prod", 2, 60.0)
    assert config.capture_spool_max_bytes == int(written["CAPTURE_SPOOL_MAX_BYTES"])
