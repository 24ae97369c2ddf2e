"""Which model the build is baking in: name, version and identity, read from a verified package."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

from model_package import open_package


@dataclass(frozen=True)
class ModelIdentity:
    """``sha256`` is ``ModelPackage.sha256`` (of ``manifest.json``, which pins every other file)."""

    name: str
    version: int
    sha256: str

    @classmethod
    def from_package(cls, location: str | os.PathLike[str]) -> ModelIdentity:
        """Open and verify the package (a ``PackageError`` if any file is altered), then read its identity."""
        package = open_package(location)
        return cls(name=package.manifest.name, version=package.manifest.version, sha256=package.sha256)

    def shell_exports(self) -> str:
        """``export`` lines for ``source``: the buildspec's one way to get these values into its shell."""
        values = {"MODEL_NAME": self.name, "MODEL_VERSION": str(self.version), "MODEL_SHA256": self.sha256}
        return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items())
