"""``retailsync clients create|list|revoke`` against a real database; the key works."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from retailsync.api.app import create_app
from retailsync.api.clients_cli import app as clients_cli
from retailsync.audit import AuditFilter, list_audit_entries
from retailsync.bootstrap import Hub, bootstrap
from retailsync.config import Settings


@pytest.fixture
def cli_env(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no retailsync.toml of the working tree
    monkeypatch.delenv("RETAILSYNC_CONFIG_FILE", raising=False)
    monkeypatch.setenv("RETAILSYNC_DATABASE_URL", sqlite_url)
    return sqlite_url


def test_create_prints_the_key_once_and_it_authenticates(cli_env: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        clients_cli, ["create", "zendesk-app", "--scope", "experience:read", "-s", "admin"]
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("rsk_")
    client_id = key.split("_")[1]

    listed = runner.invoke(clients_cli, ["list"])
    assert listed.exit_code == 0
    assert client_id in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout

    hub: Hub = bootstrap(Settings(database_url=cli_env))
    try:
        api = TestClient(create_app(hub))
        assert api.get("/v1/admin/clients", headers={"X-API-Key": key}).status_code == 200
        revoked = runner.invoke(clients_cli, ["revoke", client_id, "--reason", "rotated"])
        assert revoked.exit_code == 0, revoked.output
        # A running API trusts a verified key for auth.api_key_cache_seconds (2 s) at most.
        window = hub.settings.auth.api_key_cache_seconds
        deadline = time.monotonic() + window + 1.0
        while api.get("/v1/admin/clients", headers={"X-API-Key": key}).status_code != 401:
            assert time.monotonic() < deadline, f"the revoked key still works after {window}s"
            time.sleep(0.1)
        with hub.engine.connect() as connection:
            entries = list_audit_entries(connection, AuditFilter(entity_id=client_id))
    finally:
        hub.close()
    assert [entry.action for entry in entries] == ["api_client.revoked", "api_client.created"]
    assert all(entry.actor.startswith("cli:") and entry.correlation_id for entry in entries)
    assert entries[0].reason == "rotated"


def test_unknown_scope_and_unknown_client_are_refused_with_a_reason(cli_env: str) -> None:
    runner = CliRunner()
    bad_scope = runner.invoke(clients_cli, ["create", "x", "--scope", "everything"])
    assert bad_scope.exit_code == 2
    assert "unknown scope 'everything'" in bad_scope.output
    unknown = runner.invoke(clients_cli, ["revoke", "0000000000000000"])
    assert unknown.exit_code == 1
    assert "no API client with id" in unknown.output
