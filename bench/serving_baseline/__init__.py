"""Comparison servers for ``make bench-serving``: the common Flask pattern and a constant ASGI app."""
