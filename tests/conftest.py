"""Test-wide isolation and the shared servers.

Credentials and config are pointed away from ``~/.aws`` before boto3 is imported anywhere, so
no test can ever read a developer's real profile or reach a real account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
    os.environ.pop(_name, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)

from tests.support.servers import MariaDbServer, MotoServer, PostgresServer  # noqa: E402


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server subprocess for the session; tests call ``reset()`` or use unique names."""
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDbServer]:
    server = MariaDbServer()
    server.start()
    yield server
    server.destroy()
