"""Changing the plan changes the twin: a deliberately broken ``infra/`` (in a copy) fails DeployStage.

Each case edits one line of ``infra/service/model_service.py`` in a copy of the repository, recomputes the plan
from that copy, and runs the twin's DeployStage with the image already built (no rebuild). The intact
copy passes the same step, so each failure is the edit's doing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.twin.conftest import REPO, STACK, say, unzip
from twin.pipeline import StageFailedError, new_run
from twin.plan import Plan, compute_plan
from twin.session import Twin, clean_copy

SOURCE = "infra/service/model_service.py"
BREAKS = {
    "intact": None,
    "wrong container port in the port mapping": (
        '"portMappings": [{"containerPort": args.container_port, "protocol": "tcp", "name": "http"}],',
        '"portMappings": [{"containerPort": args.container_port + 1, "protocol": "tcp", "name": "http"}],',
        "is not in app's portMappings",
    ),
    "wrong env var name": (
        # The task definition's variables come from the app's own class (contracts/environment.py), so a
        # misspelt name cannot be written by accident any more; this renames one after the fact.
        "        ).to_env()\n",
        '        ).to_env()\n        environment["CAPTURE_URI"] = environment.pop("CAPTURE_S3_URI")\n',
        "captured nothing",
    ),
    "missing mount": (
        '"mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],  # noqa: S108',
        "",
        "exited",
    ),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_deploy_stage_follows_the_plan(case: str, twin: Twin, app_image: str, model_zip: Path, tmp_path: Path) -> None:
    copy = clean_copy(REPO, tmp_path / "repo")
    expected = None
    if BREAKS[case] is not None:
        original, broken, expected = BREAKS[case]
        source = copy / SOURCE
        text = source.read_text()
        assert original in text, f"{SOURCE} no longer has {original!r}; update this test's edit"
        source.write_text(text.replace(original, broken))
    plan = Plan(compute_plan(copy, STACK))
    run = new_run(dataclasses.replace(twin, plan=plan), log=lambda line: say(f"[{case}] {line}"))
    definitions = run.workdir / "artifact-ImageDefinitions"
    definitions.mkdir()
    (definitions / "imagedefinitions.json").write_text(json.dumps([{"name": "app", "imageUri": app_image}]))
    run.artifacts["ImageDefinitions"] = definitions
    run.artifacts["ModelSource"] = unzip(model_zip, run.workdir / "artifact-ModelSource")
    try:
        if expected is None:
            results = run.run_stage("DeployStage")
            assert [r.stage for r in results] == ["DeployStage"]
        else:
            with pytest.raises(StageFailedError, match=expected) as failed:
                run.run_stage("DeployStage")
            say(f"[{case}] DeployStage failed as it should: {str(failed.value).splitlines()[0][:200]}")
    finally:
        run.stop()
