"""Tests of the offline twin (issue #12)."""
