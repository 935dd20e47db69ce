"""The order 360 the agent panel shows, assembled from what the hub stores durably.

Until a dedicated read model exists, the view folds the order's canonical events (the bus's
event store), its cross-references, its open exceptions and the processes started for it.
Events are found through indexes only (partition key, then the correlation ids of those
events), so an event that names the order but shares neither is not shown until the
order-360 read model indexes orders itself. It never calls the ERP, so it answers when the ERP
is slow or down; it is flagged ``stale`` (with the reason and the age of the newest data) when
the ERP connector is not healthy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from retailsync.bus import tables as bus_tables
from retailsync.bus.backend import ExceptionStatus
from retailsync.console.queries import as_utc, human_age

EVENT_LIMIT = 500


@dataclass
class SystemStatus:
    system: str
    external_id: str | None = None
    last_event: str | None = None
    last_seen: datetime | None = None


@dataclass
class Order360:
    order_id: str
    found: bool
    status: str | None = None
    channel: str | None = None
    currency: str | None = None
    placed_at: str | None = None
    grand_total: str | None = None
    customer_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    systems: list[SystemStatus] = field(default_factory=list)
    payment: dict[str, Any] = field(default_factory=dict)
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    correlation_ids: list[str] = field(default_factory=list)
    last_updated: datetime | None = None
    stale: bool = False
    stale_reasons: list[str] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def age(self) -> str | None:
        if self.last_updated is None:
            return None
        return human_age(datetime.now(UTC) - self.last_updated)


def _money(value: Any) -> str | None:
    if isinstance(value, Mapping) and "amount" in value:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return None


def _names(envelope: str, order_id: str) -> bool:
    """True when the event's data names ``order_id`` as a value (not just a substring)."""
    if order_id not in envelope:
        return False
    try:
        data = json.loads(envelope).get("data")
    except ValueError:
        return False
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if value == order_id:
            return True
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _system_of(source: str) -> str:
    """``urn:retailsync:erp`` / ``https://shop.example/erp`` / ``erp`` -> a short system name."""
    tail = source.rstrip("/").replace(":", "/").split("/")
    return next((part for part in reversed(tail) if part), source)


def _inner(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``data[key]`` when the payload nests the entity there (full-state events), else ``data``."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else data


def _fold(view: Order360, event_type: str, data: Mapping[str, Any], at: datetime) -> None:
    name = event_type.removeprefix("retailsync.")
    if name == "order.created" and isinstance(data.get("order"), Mapping):
        order = data["order"]
        view.found = True
        view.status = order.get("status") or view.status
        view.channel = order.get("channel")
        view.currency = order.get("currency")
        view.placed_at = order.get("placed_at")
        view.customer_id = order.get("customer_id")
        view.grand_total = _money(order.get("grand_total"))
        view.lines = [
            {
                "line_no": line.get("line_no"),
                "sku": line.get("sku"),
                "description": line.get("description"),
                "quantity": line.get("quantity"),
                "line_total": _money(line.get("line_total")),
                "unit_price": (line.get("unit_price") or {}).get("amount"),
            }
            for line in order.get("lines") or []
            if isinstance(line, Mapping)
        ]
    elif name == "order.status_changed":
        view.found = True
        view.status = data.get("to_status") or view.status
    elif name == "order.cancelled":
        view.found = True
        view.status = "cancelled"
    elif name.startswith("shipment."):
        shipment = _inner(data, "shipment")
        shipment_id = str(shipment.get("id") or data.get("shipment_id") or "?")
        entry = view.shipments.setdefault(shipment_id, {"id": shipment_id})
        entry["status"] = name.split(".", 1)[1]
        entry["at"] = at
        for key in ("carrier", "tracking_number", "code", "description"):
            if shipment.get(key):
                entry[key] = shipment[key]
    elif name.startswith("return."):
        rma = _inner(data, "rma")
        rma_id = str(rma.get("id") or data.get("rma_id") or "?")
        entry = view.returns.setdefault(rma_id, {"id": rma_id})
        entry["status"] = name.split(".", 1)[1]
        entry["at"] = at
    elif name.startswith("refund."):
        refund = _inner(data, "refund")
        refund_id = str(refund.get("id") or data.get("refund_id") or "?")
        entry = view.refunds.setdefault(refund_id, {"id": refund_id})
        entry["status"] = name.split(".", 1)[1]
        entry["at"] = at
        amount = _money(refund.get("amount"))
        if amount:
            entry["amount"] = amount
    elif name in ("invoice.posted", "credit_note.posted"):
        key = "invoices" if name == "invoice.posted" else "credit_notes"
        view.payment.setdefault(key, []).append(
            {"id": data.get("id") or data.get("invoice_id"), "total": _money(data.get("total"))}
        )
    elif name.startswith("case."):
        case = _inner(data, "case")
        case_id = case.get("id") or data.get("case_id")
        if case_id and case_id not in view.cases:
            view.cases.append(str(case_id))
    for key in ("payment_ref", "payment_intent", "payment_id"):
        value = data.get(key)
        if isinstance(value, str):
            view.payment.setdefault("refs", [])
            if value not in view.payment["refs"]:
                view.payment["refs"].append(value)


def order_360(
    engine: sa.Engine,
    order_id: str,
    *,
    now: datetime,
    erp_breaker: str | None = None,
) -> Order360:
    """Fold everything stored about ``order_id`` into one view (see the module docstring)."""
    view = Order360(order_id=order_id, found=False)
    e = bus_tables.events.c
    x = bus_tables.exceptions.c
    columns = (e.seq, e.source, e.type, e.stored_at, e.correlation_id, e.envelope)
    with engine.connect() as conn:
        # Indexed lookups only: the order's own events (partition key, which is the subject
        # unless the sender chose another key), then the
        # events of the same journeys (correlation ids) that name the order in their data,
        # such as shipments and refunds partitioned by their own ids.
        own = conn.execute(
            sa.select(*columns)
            .where(e.partition_key == order_id)
            .order_by(e.seq)
            .limit(EVENT_LIMIT)
        ).all()
        journeys = sorted({str(r.correlation_id) for r in own if r.correlation_id})[:50]
        seen = {int(r.seq) for r in own}
        related = []
        if journeys:
            related = [
                r
                for r in conn.execute(
                    sa.select(*columns)
                    .where(e.correlation_id.in_(journeys))
                    .order_by(e.seq)
                    .limit(EVENT_LIMIT)
                )
                if int(r.seq) not in seen and _names(r.envelope, order_id)
            ]
        rows = sorted([*own, *related], key=lambda r: int(r.seq))
        try:
            from retailsync.xref import links_for

            links = links_for(conn, order_id)
        except sa.exc.SQLAlchemyError:
            links = {}
        correlations = sorted({str(r.correlation_id) for r in rows if r.correlation_id})
        exception_clauses = [x.partition_key == order_id]
        if correlations:
            exception_clauses.append(x.correlation_id.in_(correlations))
        exceptions = conn.execute(
            sa.select(x.id, x.subscriber, x.event_type, x.system, x.classification, x.error_message)
            .where(
                sa.or_(*exception_clauses),
                x.status.in_(
                    [ExceptionStatus.OPEN.value, ExceptionStatus.PERMANENTLY_FAILED.value]
                ),
            )
            .order_by(x.id)
            .limit(50)
        ).all()
    systems: dict[str, SystemStatus] = {
        system: SystemStatus(system=system, external_id=external)
        for system, external in sorted(links.items())
    }
    for row in rows:
        at = as_utc(row.stored_at)
        try:
            data = json.loads(row.envelope).get("data") or {}
        except ValueError:
            data = {}
        if isinstance(data, Mapping):
            _fold(view, row.type, data, at)
        system = _system_of(row.source)
        status = systems.setdefault(system, SystemStatus(system=system))
        status.last_event = row.type.removeprefix("retailsync.")
        status.last_seen = at
        view.last_updated = at
    if links:
        view.found = True
        for system in ("stripe", "payments"):
            if system in links:
                view.payment.setdefault("refs", [])
                if links[system] not in view.payment["refs"]:
                    view.payment["refs"].append(links[system])
    view.systems = list(systems.values())
    view.correlation_ids = correlations
    view.exceptions = [
        {
            "id": int(r.id),
            "subscriber": r.subscriber,
            "event_type": r.event_type,
            "system": r.system,
            "classification": r.classification,
            "error": r.error_message,
        }
        for r in exceptions
    ]
    if erp_breaker is not None and erp_breaker != "closed":
        view.stale = True
        view.stale_reasons.append(
            f"the ERP connector is {erp_breaker.replace('_', '-')}: figures may be behind the ERP"
        )
    if view.stale and view.last_updated is not None:
        view.stale_reasons.append(
            f"the newest data about this order is {human_age(now - view.last_updated)} old"
        )
    return view
