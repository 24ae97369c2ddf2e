"""Both stacks' offline plans, once per worker (same pattern as tests/infra/conftest.py)."""

from __future__ import annotations

import pytest

from tools.plan.offline import OfflineRun, run_offline


@pytest.fixture(scope="session")
def plans() -> dict[str, OfflineRun]:
    return {"dev": run_offline("dev"), "prod": run_offline("prod")}
