"""No job imports another job (issue #15 item 6).

The jobs (retrain, monitor, inference, release, evaluation) sit side by side on one layer; what they share
lives below them, in ``jobs_common`` (and ``alerting``, ``model_package``, ``contracts``, and — for the
evaluation, which scores in-process — ``app``). A sideways import ties one job's release to another's
internals, so this test walks every module's syntax tree (imports inside functions included) and names each
offending module and import. The common layer itself must import no job at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("retrain", "monitor", "inference", "release", "evaluation")
COMMON = ("jobs_common", "alerting")


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module an ``import``/``from … import`` in ``path`` names, with its line; relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def cross_job_imports(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``module:line imports name`` for each import in ``package`` of a top-level package in ``forbidden``."""
    problems = []
    paths = sorted((root / package).rglob("*.py"))
    assert paths, f"{root / package}: no modules found; is the package list out of date?"
    for path in paths:
        for line, name in _imported_modules(path, root):
            top = name.split(".")[0]
            if top in forbidden and top != package:
                problems.append(f"{_module_name(path, root)}:{line} imports {name}")
    return problems


@pytest.mark.parametrize("job", JOBS)
def test_no_job_imports_another_job(job: str) -> None:
    problems = cross_job_imports(job, JOBS)
    assert not problems, (
        f"job {job!r} imports another job; move the shared code down into jobs_common/:\n  " + "\n  ".join(problems)
    )


@pytest.mark.parametrize("package", COMMON)
def test_common_layer_imports_no_job(package: str) -> None:
    problems = cross_job_imports(package, JOBS)
    assert not problems, f"{package!r} is below the jobs and must not import one:\n  " + "\n  ".join(problems)


def test_the_walk_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function, a plain ``import`` and a relative import that
    climbs into another job are all reported; imports of the job's own modules and of lower layers are not."""
    package = tmp_path / "monitor"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "probe.py").write_text(
        "import jobs_common.readers\nfrom monitor import drift\nfrom . import sources\n\n"
        "def f():\n    from retrain.training import fit_candidate\n    import release.ledger\n"
    )
    (package / "sub" / "deep.py").write_text("from ..drift import x\nfrom ...evaluation import contract\n")
    assert cross_job_imports("monitor", JOBS, root=tmp_path) == [
        "monitor.probe:6 imports retrain.training",
        "monitor.probe:7 imports release.ledger",
        "monitor.sub.deep:2 imports evaluation",
    ]
