"""Helpers shared by every test package: real servers on loopback, never in-process patching."""
