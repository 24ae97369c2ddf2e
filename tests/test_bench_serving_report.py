"""The serving benchmark's verdicts (bench/serving.py): ratios, raw p99 and p99 at the reference speed.

The benchmark itself is not a test (its numbers depend on the machine); what it concludes from the numbers
is, and a wrong conclusion would be recorded in docs/bench-serving.md as a met or missed target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.serving import (
    REFERENCE_CEILING_RPS,
    Result,
    reference_p99,
    speed_context,
    table,
    target_verdicts,
    tree_cpu_ticks,
    wait_idle,
)


def _run(app_rps: float, app_p99: float, ceiling_rps: float, baseline_rps: float = 300.0) -> list[Result]:
    return [
        Result("app", 64, app_rps, 3.0, app_p99, 0),
        Result("baseline", 64, baseline_rps, 200.0, 300.0, 0),
        Result("ceiling", 64, ceiling_rps, 2.0, 8.0, 0),
    ]


def test_reference_p99_scales_by_the_machine_speed_the_ceiling_measures() -> None:
    assert reference_p99(14.0, REFERENCE_CEILING_RPS) == pytest.approx(14.0)
    assert reference_p99(14.0, REFERENCE_CEILING_RPS * 0.6) == pytest.approx(8.4)
    # A machine faster than the reference is scaled up: the reading cannot flatter a fast machine.
    assert reference_p99(8.0, REFERENCE_CEILING_RPS * 1.5) == pytest.approx(12.0)


def test_the_targets_are_read_as_written_and_the_reference_speed_is_context_only() -> None:
    results = _run(app_rps=17_000, app_p99=14.0, ceiling_rps=24_000)
    verdict = target_verdicts(results)["app"]

    assert verdict == {
        "vs baseline >= 25x": (True, "56.7x"),
        "vs ceiling >= 50%": (True, "71%"),
        "p99 < 10 ms": (False, "14.00 ms"),  # 8.4 ms at the reference speed does not make it met
    }
    context = speed_context(results, "app")
    assert context is not None
    assert "ceiling at 60% of the reference speed (24,000 of 40,000 req/s)" in context
    assert context.endswith("p99 at the reference speed would be 8.40 ms")


def test_the_ratio_bounds_themselves_count_as_met() -> None:
    verdict = target_verdicts(_run(app_rps=30_000, app_p99=9.99, ceiling_rps=60_000, baseline_rps=1_200))["app"]

    assert verdict == {
        "vs baseline >= 25x": (True, "25.0x"),
        "vs ceiling >= 50%": (True, "50%"),
        "p99 < 10 ms": (True, "9.99 ms"),
    }
    assert not target_verdicts(_run(app_rps=29_000, app_p99=10.0, ceiling_rps=60_000))["app"]["p99 < 10 ms"][0]


def test_no_verdict_without_the_ceiling_or_the_baseline_at_concurrency_64() -> None:
    results = _run(app_rps=17_000, app_p99=14.0, ceiling_rps=24_000)
    assert target_verdicts([r for r in results if r.server != "ceiling"]) == {}
    assert target_verdicts([r for r in results if r.server != "baseline"]) == {}
    assert target_verdicts([Result(r.server, 16, r.rps, r.p50_ms, r.p99_ms, 0) for r in results]) == {}
    assert speed_context([r for r in results if r.server != "ceiling"], "app") is None


def test_the_table_shows_the_reference_speed_p99_at_concurrency_64_only() -> None:
    results = _run(app_rps=17_000, app_p99=14.0, ceiling_rps=24_000)
    results += [Result(r.server, 16, r.rps, r.p50_ms, 5.0, 0) for r in results]
    rows = [line for line in table(results).splitlines() if line.startswith("| app |")]

    assert "p99 ms at the reference speed" in table(results)
    assert rows[-2].endswith("| 5.00 | - |")  # concurrency 16: no target, no scaled reading
    assert rows[-1].endswith("| 14.00 | 8.40 |")


def test_wait_idle_returns_only_once_a_server_tree_stopped_working(tmp_path: Path) -> None:
    """The bench waits for the servers' leftover work (capture catching up) to end before the next window:
    a child that burns CPU and then marks a file must have marked it when ``wait_idle`` returns."""
    done = tmp_path / "done"
    burner = (
        "import sys, pathlib\n"
        "for _ in range(40_000_000): pass\n"
        f"pathlib.Path({str(done)!r}).write_text('x')\n"
        "sys.stdin.read()\n"  # idle until the test closes the pipe
    )
    parent = subprocess.Popen([sys.executable, "-c", burner], stdin=subprocess.PIPE)
    try:
        waited = wait_idle([parent.pid], busy_ticks=0, window=0.5, timeout=120)
        assert done.exists(), "wait_idle returned while the process was still burning CPU"
        assert 0 < waited < 120
        assert tree_cpu_ticks([parent.pid]) > 0
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(30)
