"""Both stacks built once per test worker from the real Pulumi.<stack>.yaml under the offline runtime."""

from __future__ import annotations

import pytest

from tools.plan.offline import OfflineRun, run_offline


@pytest.fixture(scope="session")
def dev() -> OfflineRun:
    return run_offline("dev")


@pytest.fixture(scope="session")
def prod() -> OfflineRun:
    return run_offline("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest, dev: OfflineRun, prod: OfflineRun) -> OfflineRun:
    return {"dev": dev, "prod": prod}[request.param]
