"""Load the durable records the KPIs and the SLA monitor need, for one time window.

Reads the bus's ``bus_events`` / ``bus_exceptions`` / ``bus_exception_actions``, the
reconciliation runs and the trace store, each only when its table exists. Start events are
read from ``lookback`` before the window, so items that began earlier and ended inside count.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retailsync.observability.kpis import (
    DriftRecord,
    EventRecord,
    ExceptionRecord,
    HopRecord,
    KpiInputs,
)
from retailsync.observability.tables import trace_records
from retailsync.observability.traces import utc

KPI_EVENT_TYPES = tuple(
    f"retailsync.{name}"
    for name in (
        "order.created",
        "order.status_changed",
        "case.opened",
        "refund.requested",
        "refund.completed",
        "return.requested",
        "return.authorized",
        "return.received",
        "inventory.adjusted",
        "inventory.position_reported",
    )
)

_When = sa.DateTime(timezone=True)
_events = sa.table(
    "bus_events",
    sa.column("seq", sa.BigInteger),
    sa.column("source"),
    sa.column("event_id"),
    sa.column("type"),
    sa.column("partition_key"),
    sa.column("correlation_id"),
    sa.column("time", _When),
    sa.column("stored_at", _When),
    sa.column("envelope"),
)
_exceptions = sa.table(
    "bus_exceptions",
    sa.column("id", sa.BigInteger),
    sa.column("system"),
    sa.column("status"),
    sa.column("created_at", _When),
)
_actions = sa.table(
    "bus_exception_actions",
    sa.column("entry_id", sa.BigInteger),
    sa.column("action"),
    sa.column("at", _When),
)
_runs = sa.table(
    "reconcile_runs",
    sa.column("job"),
    sa.column("status"),
    sa.column("finished_at", _When),
    sa.column("drift_count", sa.Integer),
)

_CLOSING_ACTIONS = ("resolve", "discard")
_CHUNK = 500


def load_kpi_inputs(
    target: Engine | Connection, since: datetime, until: datetime, lookback: timedelta
) -> KpiInputs:
    """Records relevant to ``[since, until)``, with start events from ``since - lookback``."""
    if isinstance(target, Engine):
        with target.connect() as connection:
            return _load(connection, since, until, lookback)
    return _load(target, since, until, lookback)


def _load(
    connection: Connection, since: datetime, until: datetime, lookback: timedelta
) -> KpiInputs:
    inspector = sa.inspect(connection)
    start = since - lookback
    events: list[EventRecord] = []
    if inspector.has_table("bus_events"):
        rows = connection.execute(
            sa.select(_events)
            .where(
                _events.c.type.in_(KPI_EVENT_TYPES),
                _events.c.stored_at >= start,
                _events.c.stored_at < until,
            )
            .order_by(_events.c.seq)
        ).mappings()
        events = [_event(row) for row in rows]
        events = _with_orders(connection, events)
    hops = [
        HopRecord(
            kind=row.kind,
            system=row.system,
            operation=row.operation,
            status=row.status,
            at=utc(row.at),
            correlation_id=row.correlation_id,
            order_id=row.order_id,
            case_id=row.case_id,
            seq=int(row.seq),
        )
        for row in connection.execute(
            sa.select(trace_records).where(
                trace_records.c.kind.in_(("outbound_call", "workflow_step")),
                trace_records.c.at >= start,
                trace_records.c.at < until,
            )
        )
    ]
    exceptions: list[ExceptionRecord] = []
    if inspector.has_table("bus_exceptions"):
        closed: dict[int, datetime] = {}
        if inspector.has_table("bus_exception_actions"):
            for action in connection.execute(
                sa.select(_actions.c.entry_id, sa.func.max(_actions.c.at))
                .where(_actions.c.action.in_(_CLOSING_ACTIONS))
                .group_by(_actions.c.entry_id)
            ):
                closed[int(action[0])] = utc(action[1])
        for row in connection.execute(
            sa.select(_exceptions).where(_exceptions.c.created_at < until)
        ).mappings():
            ended = closed.get(int(row["id"]))
            if ended is not None and ended < since:
                continue
            if ended is None and row["status"] in ("resolved", "discarded"):
                continue  # closed without an audited action: when is unknown
            exceptions.append(
                ExceptionRecord(
                    opened_at=utc(row["created_at"]), closed_at=ended, system=row["system"]
                )
            )
    drifts: list[DriftRecord] = []
    if inspector.has_table("reconcile_runs"):
        drifts = [
            DriftRecord(
                job=row.job, finished_at=utc(row.finished_at), drift_count=int(row.drift_count)
            )
            for row in connection.execute(
                sa.select(_runs).where(
                    _runs.c.finished_at.is_not(None),
                    _runs.c.finished_at >= since,
                    _runs.c.finished_at < until,
                )
            )
        ]
    return KpiInputs(events=events, hops=hops, exceptions=exceptions, drifts=drifts)


def _event(row: sa.RowMapping) -> EventRecord:
    envelope = json.loads(row["envelope"])
    return EventRecord(
        type=str(row["type"]),
        source=str(row["source"]),
        data=envelope.get("data") or {},
        time=utc(row["time"]),
        correlation_id=row["correlation_id"],
        event_id=str(row["event_id"]),
    )


def _with_orders(connection: Connection, events: list[EventRecord]) -> list[EventRecord]:
    """Add the ``order.created`` events of orders placed before the look-back (dimensions)."""
    known = {
        str(event.data.get("order", {}).get("id"))
        for event in events
        if event.type == "retailsync.order.created"
    }
    wanted: set[str] = set()
    for event in events:
        data = event.data
        for candidate in (
            data.get("order_id"),
            (data.get("refund") or {}).get("order_id"),
            (data.get("rma") or {}).get("order_id"),
        ):
            if isinstance(candidate, str) and candidate not in known:
                wanted.add(candidate)
    extra: list[EventRecord] = []
    ordered = sorted(wanted)
    for index in range(0, len(ordered), _CHUNK):
        chunk = ordered[index : index + _CHUNK]
        rows = connection.execute(
            sa.select(_events).where(
                _events.c.type == "retailsync.order.created",
                _events.c.partition_key.in_(chunk),
            )
        ).mappings()
        extra.extend(_event(row) for row in rows)
    return extra + events
