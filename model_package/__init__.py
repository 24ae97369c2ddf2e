"""The model package contract: one module that training, the build, the app and every job import.

See ``docs/model-package.md`` for the format.
"""

from model_package.archive import (
    MANIFEST_NAME,
    ONNX_NAME,
    REFERENCE_NAME,
    REQUIRED_FILES,
    REQUIREMENTS_NAME,
    SKOPS_NAME,
    ModelPackage,
    extract_package,
    open_package,
    package_bytes,
    sha256_bytes,
    sha256_file,
    write_atomically,
    write_package,
)
from model_package.errors import IntegrityError, ManifestError, PackageError, ParityError, SchemaError
from model_package.manifest import (
    FORMAT_VERSION,
    FeatureBaseline,
    FeatureSpec,
    Lineage,
    Manifest,
    Metrics,
    TrainingData,
)

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ONNX_NAME",
    "REFERENCE_NAME",
    "REQUIRED_FILES",
    "REQUIREMENTS_NAME",
    "SKOPS_NAME",
    "FeatureBaseline",
    "FeatureSpec",
    "IntegrityError",
    "Lineage",
    "Manifest",
    "ManifestError",
    "Metrics",
    "ModelPackage",
    "PackageError",
    "ParityError",
    "SchemaError",
    "TrainingData",
    "extract_package",
    "open_package",
    "package_bytes",
    "sha256_bytes",
    "sha256_file",
    "write_atomically",
    "write_package",
]
