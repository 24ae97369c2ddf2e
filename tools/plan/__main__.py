"""``python -m tools.plan --stack dev``: the offline plan CLI (``tools/plan/plan.py``)."""

from tools.plan.plan import main

raise SystemExit(main())
