"""The layout of ``infra/`` against how the Pulumi host runs it.

The host puts ``infra/`` itself first on ``sys.path`` (``infra/__main__.py``), so a subpackage or module
there named like a standard-library module (``platform``, ``logging``, ...) would shadow it for every
library the program imports: ``infra/platform/`` made ``uuid`` fail on ``platform.system``.
"""

from __future__ import annotations

import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"


def top_level_names(root: Path) -> set[str]:
    """What ``import <name>`` would find in ``root`` when ``root`` is on ``sys.path``."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names


def test_no_infra_module_shadows_the_standard_library() -> None:
    shadowing = top_level_names(INFRA) & set(sys.stdlib_module_names)
    assert not shadowing, f"infra/ entries shadow standard-library modules under the Pulumi host: {sorted(shadowing)}"


def test_the_check_sees_subpackages(tmp_path: Path) -> None:
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "__init__.py").write_text("")
    (tmp_path / "stack.py").write_text("")
    assert top_level_names(tmp_path) == {"platform", "stack"}
