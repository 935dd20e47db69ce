"""Fixtures for every test: real PostgreSQL and NATS JetStream servers, fresh databases.

The servers come from :mod:`retailsync.testing.servers`: the ones named by
``RETAILSYNC_TEST_POSTGRES_URL`` / ``RETAILSYNC_TEST_NATS_URL`` when they answer, otherwise
private ones started for this run and stopped at its end. A server that can be neither found
nor started makes the tests that need it fail with the reason; they are never skipped.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from retailsync.testing.servers import NatsServer, PostgresServer, ensure_nats, ensure_postgres

_Server = TypeVar("_Server", PostgresServer, NatsServer)

# What each server fixture used in this run, for the CI summary.
_servers_used: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A reachable PostgreSQL server (``admin_url``, ``create_database``, ``drop_database``)."""
    server = _record("PostgreSQL", ensure_postgres)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty, uniquely named database; dropped (sessions ended) after the test."""
    name = f"rs_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A reachable NATS server with JetStream."""
    server = _record("NATS", ensure_nats)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    """The URL of :func:`nats_server`; give streams and subjects unique names per test."""
    return nats_server.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file database in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


def _record(kind: str, ensure: Callable[[], _Server]) -> _Server:
    started = time.perf_counter()
    try:
        server = ensure()
    except Exception as exc:
        _servers_used[kind] = f"UNAVAILABLE: {exc}"
        raise
    _servers_used[kind] = f"{server.origin} ({time.perf_counter() - started:.2f} s)"
    return server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("CI", "").lower() != "true" or not _servers_used:
        return
    terminalreporter.write_sep("-", "servers used")
    for kind, origin in _servers_used.items():
        terminalreporter.write_line(f"{kind}: {origin}")
