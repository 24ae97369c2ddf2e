"""Batch inference tests reuse the monitor's trained package fixture."""

from tests.monitor.conftest import trained  # noqa: F401  (re-exported fixture)
