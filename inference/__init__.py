"""Batch inference: ``python -m inference run`` scores a table in chunks with the champion (or a version).

See docs/inference.md.
"""
