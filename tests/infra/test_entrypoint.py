"""Runs the real entry point exactly as ``pulumi up`` does, so an import that works only in tests fails here.

The Pulumi Python host executes ``runpy.run_path("infra", run_name="__main__")`` with the project root as
cwd and only the main directory on ``sys.path``. A subprocess reproduces that: the project root and the cwd
are taken off ``sys.path`` before the program runs, and the mocks are loaded from the offline module's file
without importing the ``infra`` package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent(
    """
    import asyncio, importlib.util, json, os, runpy, sys
    root = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", root, ".")]
    sys.path.insert(0, os.path.join(root, "infra"))
    assert "infra" not in sys.modules
    offline_file = os.path.join(root, "tools", "plan", "offline.py")
    spec = importlib.util.spec_from_file_location("offline_runtime_for_entrypoint", offline_file)
    offline = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = offline
    spec.loader.exec_module(offline)
    import pulumi
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    stack = sys.argv[1]
    config, secret_keys = offline.load_stack_config(stack)
    mocks = offline.AwsMocks(config.get("aws:region", "us-east-1"))
    monitor = offline.RecordingMonitor(mocks)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(mocks, project="ml-delivery", stack=stack, preview=False, monitor=monitor)
    set_all_config(config, secret_keys)
    path_at_start = list(sys.path)
    loop.run_until_complete(run_pulumi_func(lambda: runpy.run_path(os.path.join(root, "infra"), run_name="__main__")))
    outputs = sorted(pulumi.runtime.settings.get_root_resource().outputs)
    print(json.dumps({"types": sorted({r.type for r in monitor.registered}), "outputs": outputs,
                      "root_on_path_at_start": root in path_at_start}))
    """
)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_entry_point_runs_as_the_pulumi_host_runs_it(stack: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, stack], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["root_on_path_at_start"] is False
    assert "aws:ecs/service:Service" in result["types"]
    assert "ml-delivery:service:ModelService" in result["types"]
    assert {"stageUrl", "prodUrl", "modelBucket"} <= set(result["outputs"])
