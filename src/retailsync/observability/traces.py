"""The durable trace store: every hop of an order's or a case's journey, in order.

Layers call :func:`record_hop` (or :func:`arecord_hop` from async code) for what the event
store does not already hold: an inbound message, a workflow step, an outbound call, an
exception, and events on a backend without a SQL event store (NATS). :func:`load_trace`
merges those records with the bus's ``bus_events``, ``bus_exceptions`` and
``bus_exception_actions`` (when the tables exist) into one timeline, from the database only,
so it reads the same after a restart. Outbound calls made outside a bus delivery are held
in a :class:`HopBuffer` and written many to a transaction (see its loss window).

Ordering: by the hub's own clock (``at`` of a record, ``stored_at`` of an event, the time of
an exception or action), then by kind (inbound, event, step, call, exception), then by
insertion. A vendor's clock (an event's ``time``) is shown, never used to order.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from retailsync.observability.errors import TraceQueryInvalid
from retailsync.observability.logging import get_logger, mask_value
from retailsync.observability.tables import trace_records
from retailsync.observability.tracecontext import (
    causation_id as current_causation_id,
)
from retailsync.observability.tracecontext import (
    correlation_id as current_correlation_id,
)
from retailsync.observability.tracecontext import (
    normalise_correlation_id,
)

_log = get_logger("retailsync.observability")


class HopKind(StrEnum):
    """What a trace entry is."""

    INBOUND = "inbound"
    EVENT = "event"
    WORKFLOW_STEP = "workflow_step"
    OUTBOUND_CALL = "outbound_call"
    EXCEPTION = "exception"


_KIND_RANK = {kind: rank for rank, kind in enumerate(HopKind)}


def utc(value: datetime | str) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _insert(connection: Connection) -> Any:
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(trace_records)
    if name == "sqlite":
        return sqlite.insert(trace_records)
    return sa.insert(trace_records)


def hop_row(
    *,
    kind: HopKind | str,
    system: str,
    operation: str,
    status: str,
    correlation_id: str | None = None,
    order_id: str | None = None,
    case_id: str | None = None,
    latency_ms: float | None = None,
    attempt: int | None = None,
    causation_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    hop_key: str | None = None,
) -> dict[str, Any]:
    """The ``trace_records`` row of one hop, its correlation and causation taken from the
    current trace now (build it where the hop happens, write it later if need be)."""
    return {
        "correlation_id": normalise_correlation_id(correlation_id) or current_correlation_id(),
        "order_id": order_id,
        "case_id": case_id,
        "kind": HopKind(kind).value,
        "system": system,
        "operation": operation,
        "status": status,
        "latency_ms": None if latency_ms is None else round(float(latency_ms), 3),
        "attempt": attempt,
        "causation_id": causation_id or current_causation_id(),
        "hop_key": hop_key,
        "detail": mask_value("detail", dict(detail or {})),
        "at": utc(at) if at is not None else datetime.now(UTC),
    }


def record_hop(
    target: Engine | Connection,
    *,
    kind: HopKind | str,
    system: str,
    operation: str,
    status: str,
    correlation_id: str | None = None,
    order_id: str | None = None,
    case_id: str | None = None,
    latency_ms: float | None = None,
    attempt: int | None = None,
    causation_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    hop_key: str | None = None,
) -> int | None:
    """Store one hop; returns its ``seq``, or None when ``hop_key`` was recorded before.

    ``correlation_id`` and ``causation_id`` default to the current trace (see
    :mod:`~retailsync.observability.tracecontext`); a ``traceparent`` header is accepted
    and reduced to its trace id. ``hop_key`` makes recording idempotent: a workflow step
    replayed after a restart passes ``f"{workflow_id}:{step}"`` and is stored once.
    ``detail`` is masked like a log line (no PII, no secrets).
    """
    row = hop_row(
        kind=kind,
        system=system,
        operation=operation,
        status=status,
        correlation_id=correlation_id,
        order_id=order_id,
        case_id=case_id,
        latency_ms=latency_ms,
        attempt=attempt,
        causation_id=causation_id,
        detail=detail,
        at=at,
        hop_key=hop_key,
    )
    if isinstance(target, Engine):
        with target.begin() as connection:
            return _store(connection, row)
    return _store(target, row)


def _store(connection: Connection, row: dict[str, Any]) -> int | None:
    statement = _insert(connection).values(**row)
    if row["hop_key"] is not None and hasattr(statement, "on_conflict_do_nothing"):
        statement = statement.on_conflict_do_nothing(index_elements=["hop_key"])
    result = connection.execute(statement.returning(trace_records.c.seq))
    seq = result.scalar_one_or_none()
    return None if seq is None else int(seq)


def store_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store many :func:`hop_row` rows in the caller's transaction (keyed ones idempotently)."""
    plain = [row for row in rows if row["hop_key"] is None]
    if plain:
        connection.execute(sa.insert(trace_records), plain)
    for row in rows:
        if row["hop_key"] is not None:
            _store(connection, row)


async def arecord_hop(target: Engine, **hop: Any) -> int | None:
    """:func:`record_hop` from async code, off the event loop."""
    return await asyncio.to_thread(record_hop, target, **hop)


class HopBuffer:
    """Hops held briefly and written many to a transaction, instead of one commit each.

    ``add`` keeps a row; the rows are written when ``max_rows`` are waiting, ``max_delay``
    seconds after the first of them, with the next hop written directly (:meth:`write_with`,
    e.g. a workflow step's own hop, so a step and the calls it made commit together), before
    a trace is read in this process (:func:`load_trace`), and at :meth:`flush_now` (shutdown).
    A crash loses what is waiting: at most ``max_delay`` seconds of hops.
    """

    def __init__(self, engine: Engine, *, max_rows: int = 256, max_delay: float = 0.5) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self.max_delay = max_delay
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: dict[str, Any]) -> None:
        """Keep ``row`` for the next write (written at once when no event loop runs)."""
        with self._lock:
            self._rows.append(row)
            waiting = len(self._rows)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_now()
            return
        if waiting >= self.max_rows:
            self._spawn_flush(loop)
        elif self._timer is None:
            self._timer = loop.call_later(self.max_delay, self._spawn_flush, loop)

    def take(self) -> list[dict[str, Any]]:
        """The rows waiting (and forget them: the caller writes them)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return rows

    def _spawn_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        task = loop.create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        rows = self.take()
        if rows:
            await asyncio.to_thread(self._write, rows)

    def flush_now(self) -> None:
        """Write what is waiting, from synchronous code (a trace read, shutdown)."""
        rows = self.take()
        if rows:
            self._write(rows)

    async def write_with(self, row: dict[str, Any]) -> None:
        """Write ``row`` now, in one transaction with the rows waiting."""
        rows = [*self.take(), row]
        await asyncio.to_thread(self._write, rows)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            with self.engine.begin() as connection:
                store_rows(connection, rows)
        except sa.exc.SQLAlchemyError as exc:
            _log.warning("trace hops not recorded", hops=len(rows), error=str(exc))


_active_buffer: HopBuffer | None = None


def use_hop_buffer(buffer: HopBuffer | None) -> None:
    """The buffer :func:`load_trace` flushes before reading (the process's trace store)."""
    global _active_buffer
    _active_buffer = buffer


def _flush_for(target: Engine | Connection) -> None:
    buffer = _active_buffer
    # Only for an engine: a caller's connection may hold a transaction the write would wait on.
    if buffer is not None and isinstance(target, Engine) and target.url == buffer.engine.url:
        buffer.flush_now()


# --------------------------------------------------------------------------------------------
# Reading a trace
# --------------------------------------------------------------------------------------------

# The bus's tables, by name only: observability must not import the bus (the bus imports it),
# and the trace still reads when the bus is not installed.
_When = sa.DateTime(timezone=True)
_events = sa.table(
    "bus_events",
    sa.column("seq", sa.BigInteger),
    sa.column("source"),
    sa.column("event_id"),
    sa.column("type"),
    sa.column("subject"),
    sa.column("partition_key"),
    sa.column("correlation_id"),
    sa.column("time", _When),
    sa.column("stored_at", _When),
    sa.column("envelope"),
)
_exceptions = sa.table(
    "bus_exceptions",
    sa.column("id", sa.BigInteger),
    sa.column("subscriber"),
    sa.column("event_source"),
    sa.column("event_id"),
    sa.column("event_type"),
    sa.column("partition_key"),
    sa.column("correlation_id"),
    sa.column("system"),
    sa.column("classification"),
    sa.column("status"),
    sa.column("error_type"),
    sa.column("error_message"),
    sa.column("history"),
    sa.column("created_at", _When),
)
_actions = sa.table(
    "bus_exception_actions",
    sa.column("id", sa.BigInteger),
    sa.column("entry_id", sa.BigInteger),
    sa.column("action"),
    sa.column("actor"),
    sa.column("reason"),
    sa.column("at", _When),
)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One hop of a timeline."""

    at: datetime
    kind: HopKind
    system: str
    operation: str
    status: str
    correlation_id: str | None
    causation_id: str | None = None
    order_id: str | None = None
    case_id: str | None = None
    latency_ms: float | None = None
    attempt: int | None = None
    event_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "trace_records"
    ref: int = 0

    def sort_key(self) -> tuple[datetime, int, str, int]:
        return (self.at, _KIND_RANK[self.kind], self.origin, self.ref)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "system": self.system,
            "operation": self.operation,
            "status": self.status,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "order_id": self.order_id,
            "case_id": self.case_id,
            "latency_ms": self.latency_ms,
            "attempt": self.attempt,
            "event_id": self.event_id,
            "detail": dict(self.detail),
            "origin": self.origin,
        }


@dataclass(frozen=True, slots=True)
class Trace:
    """The timeline for a query, oldest first, with the correlation ids it spans."""

    order_id: str | None
    case_id: str | None
    correlation_id: str | None
    correlation_ids: tuple[str, ...]
    entries: tuple[TraceEntry, ...]
    truncated: bool = False

    @property
    def systems(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for entry in self.entries:
            seen.setdefault(entry.system, None)
        return tuple(seen)

    def to_json(self) -> dict[str, Any]:
        first = self.entries[0].at if self.entries else None
        last = self.entries[-1].at if self.entries else None
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.kind.value] = counts.get(entry.kind.value, 0) + 1
        return {
            "query": {
                "order": self.order_id,
                "case": self.case_id,
                "correlation_id": self.correlation_id,
            },
            "correlation_ids": list(self.correlation_ids),
            "systems": list(self.systems),
            "started_at": first.isoformat() if first else None,
            "ended_at": last.isoformat() if last else None,
            "duration_ms": round((last - first).total_seconds() * 1000, 3)
            if first and last
            else None,
            "counts": counts,
            "truncated": self.truncated,
            "entries": [entry.to_json() for entry in self.entries],
        }


def _existing_tables(connection: Connection) -> set[str]:
    inspector = sa.inspect(connection)
    return {
        name
        for name in ("bus_events", "bus_exceptions", "bus_exception_actions")
        if inspector.has_table(name)
    }


def load_trace(
    target: Engine | Connection,
    *,
    order_id: str | None = None,
    case_id: str | None = None,
    correlation_id: str | None = None,
    limit: int = 5000,
) -> Trace:
    """The timeline of an order, a case or one correlation id (exactly one of them).

    For an order or case: every correlation id that touched it (trace records naming it,
    events whose subject, partition key or data name it), then every hop of those
    correlations, plus hops naming it without a correlation id.
    """
    given = [value for value in (order_id, case_id, correlation_id) if value]
    if len(given) != 1:
        raise TraceQueryInvalid(
            "give exactly one of order, case or correlation_id, "
            "e.g. GET /v1/admin/traces?order=ord_01J...; got "
            f"{len(given)}"
        )
    _flush_for(target)  # what this process observed so far is read too
    if isinstance(target, Engine):
        with target.connect() as connection:
            return _load(connection, order_id, case_id, correlation_id, limit)
    return _load(target, order_id, case_id, correlation_id, limit)


def _load(
    connection: Connection,
    order_id: str | None,
    case_id: str | None,
    correlation_id: str | None,
    limit: int,
) -> Trace:
    tables = _existing_tables(connection)
    entity = order_id or case_id
    correlations: set[str] = set()
    if correlation_id:
        normalised = normalise_correlation_id(correlation_id)
        assert normalised is not None
        correlations.add(normalised)
    else:
        assert entity is not None
        column = trace_records.c.order_id if order_id else trace_records.c.case_id
        correlations |= _strings(
            connection.execute(
                sa.select(trace_records.c.correlation_id)
                .where(column == entity, trace_records.c.correlation_id.is_not(None))
                .distinct()
            ).scalars()
        )
        if "bus_events" in tables:
            correlations |= _strings(
                connection.execute(
                    sa.select(_events.c.correlation_id)
                    .where(_entity_events(entity), _events.c.correlation_id.is_not(None))
                    .distinct()
                ).scalars()
            )
    entries: dict[tuple[str, str], TraceEntry] = {}
    event_ids: set[tuple[str, str]] = set()
    if "bus_events" in tables:
        clauses: list[sa.ColumnElement[bool]] = []
        if correlations:
            clauses.append(_events.c.correlation_id.in_(sorted(correlations)))
        if entity:
            clauses.append(_entity_events(entity))
        if clauses:
            rows = connection.execute(
                sa.select(_events).where(sa.or_(*clauses)).order_by(_events.c.seq).limit(limit)
            ).mappings()
            for row in rows:
                entry = _event_entry(row)
                if entity and not _mentions(row, entity) and row["correlation_id"] is None:
                    continue
                entries[("event", str(row["seq"]))] = entry
                event_ids.add((str(row["source"]), str(row["event_id"])))
    record_clauses: list[sa.ColumnElement[bool]] = []
    if correlations:
        record_clauses.append(trace_records.c.correlation_id.in_(sorted(correlations)))
    if order_id:
        record_clauses.append(trace_records.c.order_id == order_id)
    if case_id:
        record_clauses.append(trace_records.c.case_id == case_id)
    if record_clauses:
        rows = connection.execute(
            sa.select(trace_records)
            .where(sa.or_(*record_clauses))
            .order_by(trace_records.c.seq)
            .limit(limit)
        ).mappings()
        for row in rows:
            detail = row["detail"] or {}
            if row["kind"] == HopKind.EVENT and (
                (str(detail.get("source")), str(detail.get("event_id"))) in event_ids
            ):
                continue  # the event store has it already
            entries[("record", str(row["seq"]))] = _record_entry(row)
    if "bus_exceptions" in tables:
        clauses = []
        if correlations:
            clauses.append(_exceptions.c.correlation_id.in_(sorted(correlations)))
        if entity:
            clauses.append(_exceptions.c.partition_key == entity)
        if clauses:
            found = list(
                connection.execute(
                    sa.select(_exceptions).where(sa.or_(*clauses)).limit(limit)
                ).mappings()
            )
            for row in found:
                entries[("exception", str(row["id"]))] = _exception_entry(row)
            if found and "bus_exception_actions" in tables:
                by_id = {int(row["id"]): row for row in found}
                actions = connection.execute(
                    sa.select(_actions).where(_actions.c.entry_id.in_(sorted(by_id)))
                ).mappings()
                for action in actions:
                    entries[("action", str(action["id"]))] = _action_entry(
                        action, by_id[int(action["entry_id"])]
                    )
    ordered = sorted(entries.values(), key=TraceEntry.sort_key)
    truncated = len(ordered) > limit
    ordered = ordered[:limit]
    seen = {entry.correlation_id for entry in ordered if entry.correlation_id}
    return Trace(
        order_id=order_id,
        case_id=case_id,
        correlation_id=normalise_correlation_id(correlation_id),
        correlation_ids=tuple(sorted(seen | correlations)),
        entries=tuple(ordered),
        truncated=truncated,
    )


def _strings(values: Iterable[Any]) -> set[str]:
    return {str(value) for value in values if value}


def _entity_events(entity: str) -> sa.ColumnElement[bool]:
    """Events about ``entity``: by subject or partition key, or naming it in their data."""
    return sa.or_(
        _events.c.partition_key == entity,
        _events.c.subject == entity,
        _events.c.envelope.like(f'%"{_like_escape(entity)}"%', escape="\\"),
    )


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _mentions(row: sa.RowMapping, entity: str) -> bool:
    if entity in (row["subject"], row["partition_key"]):
        return True
    envelope = json.loads(row["envelope"])
    return _contains(envelope.get("data"), entity)


def _contains(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return value == needle
    if isinstance(value, Mapping):
        return any(_contains(item, needle) for item in value.values())
    if isinstance(value, list):
        return any(_contains(item, needle) for item in value)
    return False


def ids_in(data: Any) -> tuple[str | None, str | None]:
    """The order and case ids an event's data names (first found)."""
    order: str | None = None
    case: str | None = None
    stack = [data]
    while stack and (order is None or case is None):
        value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "order_id" and isinstance(item, str) and order is None:
                    order = item
                elif key == "case_id" and isinstance(item, str) and case is None:
                    case = item
                elif isinstance(item, Mapping | list):
                    stack.append(item)
            if isinstance(value.get("id"), str):
                if value["id"].startswith("ord_") and order is None:
                    order = value["id"]
                elif value["id"].startswith("case_") and case is None:
                    case = value["id"]
        elif isinstance(value, list):
            stack.extend(value)
    return order, case


def _event_entry(row: sa.RowMapping) -> TraceEntry:
    envelope = json.loads(row["envelope"])
    order, case = ids_in(envelope.get("data"))
    return TraceEntry(
        at=utc(row["stored_at"]),
        kind=HopKind.EVENT,
        system=str(row["source"]),
        operation=str(row["type"]),
        status="stored",
        correlation_id=row["correlation_id"],
        causation_id=envelope.get("causationid"),
        order_id=order,
        case_id=case,
        event_id=str(row["event_id"]),
        detail={
            "subject": row["subject"],
            "event_time": utc(row["time"]).isoformat(),
            "sequence": int(row["seq"]),
        },
        origin="bus_events",
        ref=int(row["seq"]),
    )


def _record_entry(row: sa.RowMapping) -> TraceEntry:
    detail = dict(row["detail"] or {})
    return TraceEntry(
        at=utc(row["at"]),
        kind=HopKind(row["kind"]),
        system=row["system"],
        operation=row["operation"],
        status=row["status"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        order_id=row["order_id"],
        case_id=row["case_id"],
        latency_ms=row["latency_ms"],
        attempt=row["attempt"],
        event_id=detail.get("event_id"),
        detail=detail,
        origin="trace_records",
        ref=int(row["seq"]),
    )


def _exception_entry(row: sa.RowMapping) -> TraceEntry:
    history = json.loads(row["history"] or "[]")
    return TraceEntry(
        at=utc(row["created_at"]),
        kind=HopKind.EXCEPTION,
        system=row["system"] or row["subscriber"],
        operation=f"{row['subscriber']}: {row['event_type']}",
        status=row["status"],
        correlation_id=row["correlation_id"],
        causation_id=row["event_id"],
        attempt=len(history) if isinstance(history, list) else None,
        event_id=row["event_id"],
        detail={
            "exception_id": int(row["id"]),
            "classification": row["classification"],
            "error_type": row["error_type"],
            "error": row["error_message"],
        },
        origin="bus_exceptions",
        ref=int(row["id"]),
    )


def _action_entry(action: sa.RowMapping, entry: sa.RowMapping) -> TraceEntry:
    return TraceEntry(
        at=utc(action["at"]),
        kind=HopKind.EXCEPTION,
        system=entry["system"] or entry["subscriber"],
        operation=f"exception {action['action']}",
        status=action["action"],
        correlation_id=entry["correlation_id"],
        event_id=entry["event_id"],
        detail={
            "exception_id": int(entry["id"]),
            "actor": action["actor"],
            "reason": action["reason"],
        },
        origin="bus_exception_actions",
        ref=int(action["id"]),
    )
