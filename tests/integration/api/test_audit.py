"""The audit log: credential changes recorded, searchable, and impossible to rewrite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from governed_api_support import IssueKey, new_idempotency_key

from retailsync.audit import AuditFilter, list_audit_entries, record_audit
from retailsync.audit.tables import audit_log
from retailsync.bootstrap import Hub
from retailsync.db import create_engine_for, upgrade_database

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(params=["sqlite", "postgres"])
def audited_engine(request: pytest.FixtureRequest) -> sa.Engine:
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url = str(request.getfixturevalue(fixture))
    upgrade_database(url)
    engine = create_engine_for(url)
    request.addfinalizer(engine.dispose)
    return engine


def _refund_approved(connection: sa.Connection) -> int:
    entry = record_audit(
        connection,
        actor="jwt:service-desk",
        action="refund.approved",
        entity_kind="refund",
        entity_id="rfd_1",
        before={"status": "pending_approval", "amount": Decimal("129.90"), "currency": "EUR"},
        after={"status": "approved", "amount": Decimal("129.90"), "currency": "EUR"},
        correlation_id=TRACE_ID,
        reason="over the agent limit; approved by finance",
    )
    return entry.id


def test_entries_keep_money_exact_and_read_back(audited_engine: sa.Engine) -> None:
    with audited_engine.begin() as connection:
        entry_id = _refund_approved(connection)
    with audited_engine.connect() as connection:
        [entry] = list_audit_entries(connection, AuditFilter(entity_id="rfd_1"))
    assert entry.id == entry_id
    assert entry.after == {"status": "approved", "amount": "129.90", "currency": "EUR"}
    assert entry.correlation_id == TRACE_ID
    assert entry.at.tzinfo is not None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
    ],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_rewrite_history(audited_engine: sa.Engine, statement: str) -> None:
    with audited_engine.begin() as connection:
        _refund_approved(connection)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), audited_engine.begin() as c:
        c.execute(sa.text(statement))
    with audited_engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar()
        actor = connection.execute(sa.select(audit_log.c.actor)).scalar()
    assert count == 1
    assert actor == "jwt:service-desk"


def test_postgres_refuses_truncate_too(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as c:
            c.execute(sa.text("TRUNCATE audit_log"))
    finally:
        engine.dispose()


def test_an_entry_rolls_back_with_the_change_it_describes(audited_engine: sa.Engine) -> None:
    with pytest.raises(RuntimeError), audited_engine.begin() as connection:
        _refund_approved(connection)
        raise RuntimeError("the refund itself failed")
    with audited_engine.connect() as connection:
        assert list_audit_entries(connection) == []


def test_an_entry_needs_who_what_and_which() -> None:
    with pytest.raises(ValueError, match="actor"):
        record_audit(
            None,  # type: ignore[arg-type]  (refused before any I/O)
            actor="",
            action="refund.approved",
            entity_kind="refund",
            entity_id="rfd_1",
            before=None,
            after=None,
            correlation_id=None,
        )


# --- over the API ------------------------------------------------------------------------------


def test_credential_changes_are_audited_with_who_and_the_correlation_id(
    client: TestClient, admin_key: str
) -> None:
    admin_id = admin_key.split("_")[1]
    headers = {"X-API-Key": admin_key, "traceparent": TRACEPARENT}
    created = client.post(
        "/v1/admin/clients",
        json={"name": "wms-bridge", "scopes": ["system:write"]},
        headers={**headers, "Idempotency-Key": new_idempotency_key()},
    ).json()
    new_id = created["client"]["id"]
    client.delete(
        f"/v1/admin/clients/{new_id}",
        params={"reason": "bridge decommissioned"},
        headers={**headers, "Idempotency-Key": new_idempotency_key()},
    )
    page = client.get(
        "/v1/admin/audit", params={"entity_id": new_id}, headers={"X-API-Key": admin_key}
    ).json()
    revoked, made = page["entries"]  # newest first
    assert made["action"] == "api_client.created"
    assert made["actor"] == f"apikey:{admin_id}"
    assert made["before"] is None
    assert made["after"]["scopes"] == ["system:write"]
    assert made["correlation_id"] == TRACE_ID
    assert revoked["action"] == "api_client.revoked"
    assert revoked["before"]["revoked_at"] is None
    assert revoked["after"]["revoked_at"] is not None
    assert revoked["reason"] == "bridge decommissioned"
    assert created["api_key"] not in str(page)
    assert created["api_key"].split("_", 2)[2] not in str(page)


def test_audit_search_filters_and_pages(client: TestClient, hub: Hub, admin_key: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with hub.engine.begin() as connection:
        for number in range(7):
            record_audit(
                connection,
                actor="workflow:refund" if number % 2 else "apikey:agent",
                action="refund.issued",
                entity_kind="refund",
                entity_id=f"rfd_{number}",
                before=None,
                after={"amount": Decimal("10.00")},
                correlation_id=None,
                clock=lambda number=number: start + timedelta(hours=number),
            )
    headers = {"X-API-Key": admin_key}
    params: dict[str, str | int] = {"action": "refund.issued", "limit": 3}
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get(
            "/v1/admin/audit",
            params={**params, **({"cursor": cursor} if cursor else {})},
            headers=headers,
        ).json()
        seen += [entry["entity_id"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"rfd_{n}" for n in reversed(range(7))]
    by_actor = client.get(
        "/v1/admin/audit", params={"actor": "workflow:refund"}, headers=headers
    ).json()
    assert [e["entity_id"] for e in by_actor["entries"]] == ["rfd_5", "rfd_3", "rfd_1"]
    window = client.get(
        "/v1/admin/audit",
        params={
            "since": (start + timedelta(hours=2)).isoformat(),
            "until": (start + timedelta(hours=4)).isoformat(),
            "entity_kind": "refund",
        },
        headers=headers,
    ).json()
    assert [e["entity_id"] for e in window["entries"]] == ["rfd_3", "rfd_2"]


def test_audit_needs_the_admin_scope(client: TestClient, issue_key: IssueKey) -> None:
    reader = issue_key("system:read")
    assert client.get("/v1/admin/audit", headers={"X-API-Key": reader}).status_code == 403
