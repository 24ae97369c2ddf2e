"""Contracts shared by infra, the app and every job: defined once here, imported everywhere.

A contract is anything two processes (or a process and the infrastructure that runs it) must agree on:
bucket key layouts, record fields, metric names, environment variables, exit codes. This package depends
on the standard library and pydantic only, so every image can carry it.
"""
