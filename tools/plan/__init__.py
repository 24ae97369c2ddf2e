"""The offline plan tools: not part of what ``pulumi up`` runs.

``offline.py`` runs the real program (``infra/``) under Pulumi mocks and records what it registers; ``plan.py``
prints that plan (tree or JSON), ``plan_diagram.py``/``plan_diff.py``/``plan_cost.py`` review it, and
``config_reference.py`` writes the README's configuration table from ``infra/settings.py``.
"""
