"""Benchmarks (not tests): ``make bench-serving``, ``make bench-drift``, ``make bench-inference``."""
