"""Read-only queries behind the console's pages, sized for big queues.

The exception list reads the bus's tables directly (one indexed page and one count per
request) so it can filter by role and age, which the queue's own API does not; every change
still goes through :class:`retailsync.bus.backend.ExceptionQueue`, which audits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.bus import tables as bus_tables
from retailsync.bus.backend import AttemptRecord, Classification, ExceptionStatus
from retailsync.bus.consumer import load_attempts
from retailsync.observability.settings import Role

PAGE_SIZE = 50

#: Systems whose business errors are money questions (routed to finance).
FINANCE_SYSTEMS = ("erp", "stripe", "payments")
_FINANCE_TYPE_WORDS = ("refund", "payment", "invoice", "credit")

AGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
AGE_LABELS = {
    "": "any age",
    "15m": "older than 15 minutes",
    "1h": "older than 1 hour",
    "24h": "older than 24 hours",
    "7d": "older than 7 days",
}
ROLE_LABELS = {
    "": "any role",
    Role.INTEGRATION.value: "Integration team (transient, unclassified)",
    Role.FINANCE.value: "Finance (business errors on money)",
    Role.SERVICE_OPERATIONS.value: "Service operations (other business errors)",
}
STATUS_CHOICES = ("open", "retrying", "permanently_failed", "resolved", "discarded", "all")


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _finance_clause() -> sa.ColumnElement[bool]:
    c = bus_tables.exceptions.c
    return sa.or_(
        sa.func.coalesce(c.system, "").in_(FINANCE_SYSTEMS),
        *[c.event_type.like(f"%{word}%") for word in _FINANCE_TYPE_WORDS],
    )


def role_of(classification: str, system: str | None, event_type: str) -> Role:
    """Who an exception is for: the same rule the role filter applies in SQL."""
    if classification != Classification.BUSINESS.value:
        return Role.INTEGRATION
    if (system or "") in FINANCE_SYSTEMS or any(w in event_type for w in _FINANCE_TYPE_WORDS):
        return Role.FINANCE
    return Role.SERVICE_OPERATIONS


@dataclass(frozen=True)
class ExceptionQuery:
    """The exception list's filters, as parsed from the page's query string."""

    status: str = "open"
    classification: str = ""
    system: str = ""
    subscriber: str = ""
    age: str = ""
    role: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: dict[str, str]) -> ExceptionQuery:
        status = params.get("status", "open")
        classification = params.get("classification", "")
        age = params.get("age", "")
        role = params.get("role", "")
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            status=status if status in STATUS_CHOICES else "open",
            classification=classification
            if classification in {c.value for c in Classification}
            else "",
            system=params.get("system", "")[:100],
            subscriber=params.get("subscriber", "")[:100],
            age=age if age in AGES else "",
            role=role if role in ROLE_LABELS else "",
            page=page,
        )

    def where(self, now: datetime) -> list[sa.ColumnElement[bool]]:
        c = bus_tables.exceptions.c
        clauses: list[sa.ColumnElement[bool]] = []
        if self.status != "all":
            clauses.append(c.status == ExceptionStatus(self.status).value)
        if self.classification:
            clauses.append(c.classification == self.classification)
        if self.system == "-":
            clauses.append(c.system.is_(None))
        elif self.system:
            clauses.append(c.system == self.system)
        if self.subscriber:
            clauses.append(c.subscriber == self.subscriber)
        if self.age:
            clauses.append(c.created_at < now - AGES[self.age])
        if self.role == Role.INTEGRATION.value:
            clauses.append(c.classification != Classification.BUSINESS.value)
        elif self.role == Role.FINANCE.value:
            clauses.append(c.classification == Classification.BUSINESS.value)
            clauses.append(_finance_clause())
        elif self.role == Role.SERVICE_OPERATIONS.value:
            clauses.append(c.classification == Classification.BUSINESS.value)
            clauses.append(sa.not_(_finance_clause()))
        return clauses

    def query_string(self, **changes: Any) -> str:
        """The URL query for these filters with ``changes`` applied (for links and paging)."""
        from urllib.parse import urlencode

        values = {
            "status": self.status,
            "classification": self.classification,
            "system": self.system,
            "subscriber": self.subscriber,
            "age": self.age,
            "role": self.role,
            "page": str(self.page),
        }
        values.update({key: str(value) for key, value in changes.items()})
        return urlencode({k: v for k, v in values.items() if v and not (k == "page" and v == "1")})


@dataclass(frozen=True)
class ExceptionRow:
    id: int
    subscriber: str
    event_type: str
    event_id: str
    partition_key: str | None
    correlation_id: str | None
    system: str | None
    classification: str
    status: str
    error_message: str
    attempts: int
    manual_retry_count: int
    created_at: datetime
    age: str
    role: str


@dataclass(frozen=True)
class ExceptionPage:
    query: ExceptionQuery
    rows: list[ExceptionRow]
    total: int
    systems: list[str]
    subscribers: list[str]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def human_age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _attempts(history: str) -> int:
    try:
        return len(json.loads(history or "[]"))
    except ValueError:
        return 0


def list_exceptions(engine: Engine, query: ExceptionQuery, *, now: datetime) -> ExceptionPage:
    """One page of the exception queue (oldest first), its total and the filter choices."""
    c = bus_tables.exceptions.c
    table = bus_tables.exceptions
    where = query.where(now)
    columns = [
        c.id,
        c.subscriber,
        c.event_type,
        c.event_id,
        c.partition_key,
        c.correlation_id,
        c.system,
        c.classification,
        c.status,
        c.error_message,
        c.history,
        c.manual_retry_count,
        c.created_at,
    ]
    # Oldest first. With a status, the (status, created_at) index gives the order; across
    # every status the id (assigned in arrival order) does, without reading each row.
    order = (c.created_at, c.id) if query.status != "all" else (c.id,)
    subs = bus_tables.subscriptions.c
    with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(table).where(*where)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(
            sa.select(*columns)
            .where(*where)
            .order_by(*order)
            .limit(PAGE_SIZE)
            .offset((query.page - 1) * PAGE_SIZE)
        ).all()
        # Filter choices from the registered subscriptions (small), not from the queue (big).
        registered = conn.execute(sa.select(subs.name, subs.downstream)).all()
    systems = {str(r.downstream) for r in registered if r.downstream}
    subscribers = {str(r.name) for r in registered}
    for row in rows:
        if row.system:
            systems.add(row.system)
        subscribers.add(row.subscriber)
    if query.system:
        systems.add(query.system)
    if query.subscriber:
        subscribers.add(query.subscriber)
    result = []
    for row in rows:
        created = as_utc(row.created_at)
        result.append(
            ExceptionRow(
                id=int(row.id),
                subscriber=row.subscriber,
                event_type=row.event_type,
                event_id=row.event_id,
                partition_key=row.partition_key,
                correlation_id=row.correlation_id,
                system=row.system,
                classification=row.classification,
                status=row.status,
                error_message=row.error_message,
                attempts=_attempts(row.history),
                manual_retry_count=int(row.manual_retry_count),
                created_at=created,
                age=human_age(now - created),
                role=role_of(row.classification, row.system, row.event_type).value,
            )
        )
    return ExceptionPage(
        query=query,
        rows=result,
        total=total,
        systems=sorted(systems | {"-"}),
        subscribers=sorted(subscribers),
    )


@dataclass(frozen=True)
class ExceptionDetail:
    row: ExceptionRow
    event_source: str
    error_type: str
    payload: str
    history: list[AttemptRecord]
    actions: list[dict[str, Any]]
    updated_at: datetime


def get_exception(engine: Engine, entry_id: int, *, now: datetime) -> ExceptionDetail | None:
    """One exception with its event (pretty JSON), attempt history and audited actions."""
    table = bus_tables.exceptions
    actions = bus_tables.exception_actions
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == entry_id)).first()
        if row is None:
            return None
        action_rows = conn.execute(
            sa.select(actions).where(actions.c.entry_id == entry_id).order_by(actions.c.id)
        ).all()
    created = as_utc(row.created_at)
    try:
        payload = json.dumps(json.loads(row.envelope), indent=2, sort_keys=True)
    except ValueError:
        payload = row.envelope
    history = load_attempts(row.history)
    return ExceptionDetail(
        row=ExceptionRow(
            id=int(row.id),
            subscriber=row.subscriber,
            event_type=row.event_type,
            event_id=row.event_id,
            partition_key=row.partition_key,
            correlation_id=row.correlation_id,
            system=row.system,
            classification=row.classification,
            status=row.status,
            error_message=row.error_message,
            attempts=len(history),
            manual_retry_count=int(row.manual_retry_count),
            created_at=created,
            age=human_age(now - created),
            role=role_of(row.classification, row.system, row.event_type).value,
        ),
        event_source=row.event_source,
        error_type=row.error_type,
        payload=payload,
        history=history,
        actions=[
            {"action": a.action, "actor": a.actor, "reason": a.reason, "at": as_utc(a.at)}
            for a in action_rows
        ],
        updated_at=as_utc(row.updated_at),
    )
