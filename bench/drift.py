"""Drift on 1M rows x 20 features against the baseline, timed against evidently's data-drift report.

``make bench-drift`` (or ``python -m bench.drift --rows 1000000``). evidently is not a project
dependency: it is installed into a separate venv ``.venv-bench`` and timed in a subprocess on the same
Parquet files, so its dependencies never touch the main environment. If it cannot be installed, our
timing is still printed. Results are recorded in docs/bench-drift.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from jobs_common.capture import observations_from_frame
from jobs_common.reference import reference_csv
from model_package.archive import MANIFEST_NAME, REFERENCE_NAME, ModelPackage
from model_package.manifest import FeatureSpec, Manifest, Metrics, TrainingData
from model_package.runtime import MISSING_CATEGORY, model_columns
from monitor.drift import DriftAnalysis
from monitor.render import render_drift_report
from retrain.baseline import feature_baselines

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".venv-bench"
NUMERIC, CATEGORICAL = 15, 5
CATEGORIES = tuple(f"K{i:02d}" for i in range(8))

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
started = time.perf_counter()
try:
    from evidently import Report
    from evidently.presets import DataDriftPreset
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    computed = time.perf_counter()
    snapshot.save_html(sys.argv[3])
except ImportError:  # evidently < 0.7
    from evidently.report import Report
    from evidently.metric_preset import DataDriftPreset
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref, current_data=cur)
    computed = time.perf_counter()
    report.save_html(sys.argv[3])
import evidently
print(json.dumps({"compute_s": computed - started, "total_s": time.perf_counter() - started,
                  "version": evidently.__version__}))
"""


def make_frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """15 numeric (normal, gamma, integer counts) + 5 categorical columns; ``shift`` moves three of them."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        if i % 3 == 0:
            values = rng.normal(50, 10, rows)
        elif i % 3 == 1:
            values = rng.gamma(2.0, 5.0, rows)
        else:
            values = rng.poisson(6, rows).astype(np.float64)
        if i < 3:
            values = values * (1 + shift) if i % 3 != 2 else np.round(values * (1 + shift))
        data[f"n{i:02d}"] = values
    weights = np.linspace(1, 2, len(CATEGORIES))
    for i in range(CATEGORICAL):
        data[f"c{i}"] = rng.choice(np.array(CATEGORIES, dtype=object), rows, p=weights / weights.sum())
    return pd.DataFrame(data)


def bench_package(reference: pd.DataFrame) -> ModelPackage:
    """A package with a manifest baseline and reference.csv built by retrain's own code (no model needed)."""
    specs = tuple(
        FeatureSpec(name=c, dtype="float", nullable=True)
        if c.startswith("n")
        else FeatureSpec(name=c, dtype="string", nullable=True, categories=CATEGORIES)
        for c in reference.columns
    )
    columns = {c: reference[c].to_numpy(dtype=object if c.startswith("c") else np.float64) for c in reference.columns}
    model = model_columns(
        # model_construct skips validation on purpose (the baseline comes from these columns, so a valid manifest
        # cannot exist yet); only .features is read. The pydantic plugin types it as if every field were needed.
        Manifest.model_construct(features=specs),  # type: ignore[call-arg]
        columns,
    )
    sample = np.random.default_rng(0).choice(len(reference), 5000, replace=False)
    y = np.zeros(len(sample), dtype=np.int64)
    manifest = Manifest(
        name="bench",
        version=1,
        created_at=datetime.now(UTC),
        git_sha="bench",
        target="y",
        training_data=TrainingData(uri="memory://", sha256="0" * 64, rows=len(reference)),
        features=specs,
        metrics=Metrics(roc_auc=0.5, log_loss=0.7, lift=1.0, holdout_rows=1),
        baseline=feature_baselines(specs, model, MISSING_CATEGORY),
        libraries={},
        files={},
    )
    files = {
        REFERENCE_NAME: reference_csv(specs, "y", {k: v[sample] for k, v in columns.items()}, y),
        MANIFEST_NAME: manifest.to_json().encode(),
    }
    return ModelPackage(manifest=manifest, files=files, source="bench")


def ours(package: ModelPackage, current: pd.DataFrame, out: Path) -> dict[str, float | None]:
    started = time.perf_counter()
    report = DriftAnalysis(package).run(observations_from_frame(current, package.manifest))
    computed = time.perf_counter()
    data = report.to_dict()
    (out / "ours.json").write_text(json.dumps(data, default=str))
    (out / "ours.html").write_text(render_drift_report(data))
    return {
        "compute_s": computed - started,
        "total_s": time.perf_counter() - started,
        "drifted": len(report.drifted_features),
        "adversarial_auc": report.adversarial.auc if report.adversarial else None,
    }


def ensure_evidently() -> Path | None:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import evidently"], capture_output=True, check=False)
    if probe.returncode != 0:
        print("installing evidently into .venv-bench (separate from the project's venv) ...", flush=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "evidently", "pandas<3", "pyarrow"],
            capture_output=True,
            check=False,
        )
        if install.returncode != 0:
            print(f"evidently could not be installed: {install.stderr.decode()[-500:]}")
            return None
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    reference = make_frame(args.reference_rows, seed=0)
    current = make_frame(args.rows, seed=1, shift=0.05)
    package = bench_package(reference)
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        out = Path(tmp)
        result = ours(package, current, out)
        print(
            f"ours: {args.rows} rows x {current.shape[1]} features: compute {result['compute_s']:.2f}s, "
            f"with JSON+HTML {result['total_s']:.2f}s; drifted {result['drifted']}, "
            f"adversarial AUC {result['adversarial_auc']:.3f}"
        )
        python = None if args.skip_evidently else ensure_evidently()
        if python is None:
            print("evidently: not timed")
            return
        reference.to_parquet(out / "ref.parquet")
        current.to_parquet(out / "cur.parquet")
        run = subprocess.run(
            [
                str(python),
                "-c",
                EVIDENTLY_SCRIPT,
                str(out / "ref.parquet"),
                str(out / "cur.parquet"),
                str(out / "evidently.html"),
            ],
            capture_output=True,
            check=False,
        )
        if run.returncode != 0:
            print(f"evidently failed: {run.stderr.decode()[-1500:]}")
            return
        theirs = json.loads(run.stdout.decode().strip().splitlines()[-1])
        print(f"evidently {theirs['version']}: compute {theirs['compute_s']:.2f}s, with HTML {theirs['total_s']:.2f}s")
        print(
            f"ratio evidently/ours: compute {theirs['compute_s'] / result['compute_s']:.1f}x, "
            f"with reports {theirs['total_s'] / result['total_s']:.1f}x"
        )


if __name__ == "__main__":
    main()
