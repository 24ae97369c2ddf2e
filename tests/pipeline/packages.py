"""A structurally valid model.zip for the build and release tests, whose model bytes do not matter."""

from __future__ import annotations

from model_package.archive import package_bytes
from model_package.manifest import Manifest


def make_package(version: int, *, git_sha: str, salt: str = "") -> bytes:
    """Sealed by ``package_bytes`` (so it verifies); ``salt`` changes the bytes, not the version."""
    manifest = Manifest.model_validate(
        {
            "name": "churn",
            "version": version,
            "created_at": "2026-02-01T00:00:00Z",
            "git_sha": git_sha,
            "target": "churn",
            "training_data": {"uri": "memory://", "sha256": "c" * 64, "rows": 100},
            "features": [{"name": "score", "dtype": "float", "nullable": False}],
            "metrics": {"roc_auc": 0.8, "log_loss": 0.4, "lift": 2.0, "holdout_rows": 20},
            "baseline": [],
            "libraries": {"scikit-learn": "1.9.1"},
            "files": {},
        }
    )
    files = {
        "model.onnx": f"onnx-{version}-{salt}".encode(),
        "model.skops": b"skops",
        "requirements.txt": b"scikit-learn==1.9.1\n",
        "reference.csv": b"score,churn\n0.1,0\n",
    }
    return package_bytes(manifest, files)[1]
