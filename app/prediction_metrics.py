"""The prediction-distribution metric (issue #16): how far this worker's answers moved from the package's
baseline, as one CloudWatch EMF line per period, the input of the prod canary's rollback alarm.

Names, namespace and period are the contract's (:mod:`contracts.prediction_metrics`). The shift per task:

- binary: ``|mean P(positive) of the period - the baseline's mean|``;
- multiclass: total-variation distance between the period's predicted-class shares and the baseline's
  (``0.5 * sum |p - q|`` over every label of either);
- regression: ``|mean prediction - baseline mean| / baseline std`` (a std of 0 divides by 1).

The baseline is the package's ``prediction_baseline`` (the holdout distribution of what the model answers,
written at training), read once at load. Off the hot path: :meth:`ScoreShift.observe` adds one merged
batch's answers to running sums in the event loop; :meth:`ScoreShift.emit` (the periodic task, the same
loop, so no lock) turns the period's sums into one line and starts the next period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from contracts import prediction_metrics as contract
from model_package.manifest import Manifest

log = logging.getLogger("app.prediction_metrics")


class ScoreShift:
    """Running sums of one period's answers and the baseline they are compared with."""

    def __init__(
        self,
        task: str,
        service: str,
        model_version: int,
        *,
        baseline_mean: float = 0.0,
        baseline_std: float = 1.0,
        baseline_shares: Mapping[str, float] | None = None,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.task = task
        self.service = service
        self.model_version = model_version
        self.baseline_mean = baseline_mean
        # A constant training prediction has std 0: divide by 1, so the shift is in the target's units.
        self.baseline_std = baseline_std if baseline_std > 0 else 1.0
        self.baseline_shares = dict(baseline_shares or {})
        self._write = write or _stdout_line
        self._clock = clock
        self.count = 0
        self.total = 0.0
        self.labels: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, service: str | None, *, write: Callable[[str], None] | None = None
    ) -> ScoreShift | None:
        """The metric for this package, or None (off, with one log line saying why)."""
        if not service:
            log.info("prediction-distribution metric off: %s is not set", contract.SERVICE_NAME_ENV)
            return None
        task = manifest.task.type
        baseline = manifest.prediction_baseline
        if baseline is None or baseline.count == 0:
            log.info("prediction-distribution metric off: package %s v%s has no prediction baseline",
                     manifest.name, manifest.version)  # fmt: skip
            return None
        if task == "multiclass":
            if not baseline.category_fractions:
                log.info("prediction-distribution metric off: the multiclass baseline has no class shares")
                return None
            return cls(task, service, manifest.version, baseline_shares=baseline.category_fractions, write=write)
        if baseline.mean is None:
            log.info("prediction-distribution metric off: the %s baseline has no mean", task)
            return None
        return cls(task, service, manifest.version, baseline_mean=baseline.mean,
                   baseline_std=baseline.std or 0.0, write=write)  # fmt: skip

    def observe(self, outputs: list[dict[str, Any] | None]) -> None:
        """Add one merged batch's answers (``None`` rows were rejected, not scored)."""
        if self.task == "multiclass":
            labels = self.labels
            for output in outputs:
                if output is not None:
                    key = str(output["label"])
                    labels[key] = labels.get(key, 0) + 1
                    self.count += 1
            return
        field = "probability" if self.task == "binary" else "value"
        for output in outputs:
            if output is not None:
                self.total += float(output[field])
                self.count += 1

    def shift(self) -> float:
        """The period's distance from the baseline (see the module docstring)."""
        if self.task == "multiclass":
            shares = {label: n / self.count for label, n in self.labels.items()}
            labels = set(shares) | set(self.baseline_shares)
            return 0.5 * sum(abs(shares.get(k, 0.0) - self.baseline_shares.get(k, 0.0)) for k in labels)
        mean = self.total / self.count
        if self.task == "binary":
            return abs(mean - self.baseline_mean)
        return abs(mean - self.baseline_mean) / self.baseline_std

    def emit(self) -> str | None:
        """Write the period's line (only when something was scored) and start the next period."""
        if self.count == 0:
            return None
        value = self.shift()
        line = emf_line(self.service, self.model_version, value if math.isfinite(value) else 0.0, self.count,
                        self._clock())  # fmt: skip
        self.count, self.total, self.labels = 0, 0.0, {}
        self._write(line)
        return line

    @staticmethod
    def start(metric: ScoreShift | None) -> None:
        """Start the periodic task of ``metric`` (if on) in the running loop: the worker's, since the app's
        lifespan calls this, so the sums and the emission share one thread and need no lock."""
        if metric is not None:
            metric._task = asyncio.get_running_loop().create_task(metric.run())

    @staticmethod
    def stop(metric: ScoreShift | None) -> None:
        """Stop the periodic task and write the last partial period (what was scored since the last line)."""
        if metric is not None:
            if metric._task is not None:
                metric._task.cancel()
                metric._task = None
            metric.emit()

    async def run(self, period: float = contract.PERIOD_SECONDS) -> None:
        """The periodic task (one per worker, started with the app): emit every ``period`` seconds."""
        while True:
            await asyncio.sleep(period)
            try:
                self.emit()
            except Exception:  # a metric must never stop the worker; the log says what went wrong
                log.exception("prediction-distribution metric: emit failed")


def emf_line(service: str, model_version: int, shift: float, scored: int, now: float) -> str:
    """One CloudWatch embedded-metric-format record (CloudWatch User Guide, "Specification: Embedded metric
    format"), laid out as :mod:`contracts.prediction_metrics` describes."""
    document = {
        "_aws": {
            "Timestamp": int(now * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": contract.NAMESPACE,
                    "Dimensions": [[contract.SERVICE_DIMENSION]],
                    "Metrics": [
                        {"Name": contract.SCORE_SHIFT_METRIC},
                        {"Name": contract.SCORED_METRIC, "Unit": "Count"},
                    ],
                }
            ],
        },
        contract.SERVICE_DIMENSION: service,
        contract.MODEL_VERSION_PROPERTY: model_version,
        contract.SCORE_SHIFT_METRIC: round(shift, 6),
        contract.SCORED_METRIC: scored,
    }
    return json.dumps(document, separators=(",", ":"))


def _stdout_line(line: str) -> None:
    from app.capture.writer import _stdout_line as write  # the one stdout writer for EMF lines (its lock)

    write(line)
