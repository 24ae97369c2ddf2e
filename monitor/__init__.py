"""Monitoring jobs: data and concept drift, drift sensitivity, prediction summaries.

``python -m monitor drift|sensitivity|summary``; see docs/monitoring.md.
"""
