"""Write and read audit entries: who did what to which entity, when, before and after."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Connection

from retailsync.audit.tables import audit_log


class AuditEntry(BaseModel):
    """One recorded action. ``before``/``after`` are JSON (money as strings, never floats)."""

    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor: str
    action: str
    entity_kind: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    correlation_id: str | None
    reason: str | None


@dataclass(frozen=True)
class AuditFilter:
    """What to look for; every field left ``None`` matches everything."""

    actor: str | None = None
    action: str | None = None
    entity_kind: str | None = None
    entity_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _json_state(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    # Decimal -> "12.50" (exact), datetime -> ISO 8601, enums -> values, models -> dicts.
    jsonable = to_jsonable_python(dict(state))
    assert isinstance(jsonable, dict)
    return jsonable


def record_audit(
    connection: Connection,
    *,
    actor: str,
    action: str,
    entity_kind: str,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    correlation_id: str | None,
    reason: str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AuditEntry:
    """Append one entry in ``connection``'s transaction and return it.

    ``actor`` names who acted (``apikey:<id>``, ``jwt:<client>``, ``cli:<user>``,
    ``workflow:<id>``); ``action`` is a dotted verb (``refund.approved``,
    ``api_client.revoked``); ``before``/``after`` are the entity's relevant state around the
    change (``None`` when it did not exist / no longer exists). Never put secrets in them.
    """
    if not actor or not action or not entity_kind or not entity_id:
        raise ValueError(
            "an audit entry needs actor, action, entity_kind and entity_id; got "
            f"actor={actor!r}, action={action!r}, entity_kind={entity_kind!r}, "
            f"entity_id={entity_id!r}"
        )
    values = {
        "at": _utc(clock()),
        "actor": actor,
        "action": action,
        "entity_kind": entity_kind,
        "entity_id": entity_id,
        "before": _json_state(before),
        "after": _json_state(after),
        "correlation_id": correlation_id,
        "reason": reason,
    }
    entry_id = connection.execute(
        audit_log.insert().values(**values).returning(audit_log.c.id)
    ).scalar_one()
    return AuditEntry(id=entry_id, **values)


def list_audit_entries(
    connection: Connection,
    search: AuditFilter = AuditFilter(),
    *,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries matching ``search``, newest first; ``before_id`` continues a previous page."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    columns = audit_log.c
    for column, value in (
        (columns.actor, search.actor),
        (columns.action, search.action),
        (columns.entity_kind, search.entity_kind),
        (columns.entity_id, search.entity_id),
        (columns.correlation_id, search.correlation_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if search.since is not None:
        query = query.where(columns.at >= _utc(search.since))
    if search.until is not None:
        query = query.where(columns.at < _utc(search.until))
    if before_id is not None:
        query = query.where(columns.id < before_id)
    return [_entry(row._mapping) for row in connection.execute(query)]


def _utc(moment: datetime) -> datetime:
    """UTC, which is how every entry is written (a naive value is taken as UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _entry(row: sa.RowMapping) -> AuditEntry:
    # SQLite keeps no offset; every timestamp is written in UTC.
    return AuditEntry.model_validate({**row, "at": _utc(row["at"])})
