"""Entry point of ``pulumi up``.

The Pulumi Python host runs this directory with ``runpy.run_path`` and puts only ``infra/`` on
``sys.path``, not the project root, so ``import infra`` would fail there while working in tests. Putting
the project root first makes both runs import the same ``infra`` package
(``tests/infra/test_entrypoint.py`` runs this file exactly as the host does).
"""

import sys
from pathlib import Path

PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)

from infra.stack import build_stack  # noqa: E402

build_stack()
