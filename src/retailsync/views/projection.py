"""The order 360 projection: bus subscription handlers that keep the read model current.

:func:`fact_from_event` says what one canonical event tells about an order or one of its parts
(pure); :func:`apply_event` merges it into ``views_orders`` / ``views_order_parts`` inside the
delivery's transaction (``ctx.connection``), so the read model changes exactly once per event.
Entity versions decide between facts that arrive out of order (see :mod:`retailsync.views.merge`):
a late, older event never takes a status back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from retailsync.bus.backend import DeliveryContext, EventFilter, Subscription
from retailsync.domain import catalogue as c
from retailsync.domain.events import CloudEvent
from retailsync.views.merge import merge_facts
from retailsync.views.tables import views_order_parts, views_orders

__all__ = [
    "ORDER_360_EVENT_TYPES",
    "SUBSCRIPTION_NAME",
    "OrderFact",
    "PartFact",
    "PartKind",
    "apply_event",
    "fact_from_event",
    "handle_order_360_event",
    "order_360_subscription",
]

SUBSCRIPTION_NAME = "views.order360"


class PartKind(StrEnum):
    SHIPMENT = "shipment"
    RETURN = "return"
    REFUND = "refund"
    CASE = "case"
    POSTING = "posting"


@dataclass(frozen=True)
class OrderFact:
    """What an event says about the order itself (``order``, ``status`` …), at ``version``."""

    order_id: str
    version: int | None
    facts: dict[str, Any]


@dataclass(frozen=True)
class PartFact:
    """What an event says about a part of an order, and how that part links to the order."""

    kind: PartKind
    entity_id: str
    version: int | None
    facts: dict[str, Any]
    links: dict[str, str | None] = field(default_factory=dict)


Fact = OrderFact | PartFact


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dump(model: Any, **kwargs: Any) -> Any:
    return model.model_dump(mode="json", **kwargs) if model is not None else None


def _order_created(p: c.OrderCreated) -> Fact:
    order = p.order
    return OrderFact(
        order.id,
        order.version,
        {
            "order": _dump(order),
            "status": order.status.value,
            "status_changed_at": _iso(order.placed_at),
        },
    )


def _order_status(p: c.OrderStatusChanged) -> Fact:
    facts = {
        "status": p.to_status.value,
        "status_reason": p.reason,
        "status_changed_at": _iso(p.changed_at),
    }
    return OrderFact(p.order_id, p.version, facts)


def _order_cancelled(p: c.OrderCancelled) -> Fact:
    facts = {
        "status": "cancelled",
        "status_reason": p.reason,
        "status_changed_at": _iso(p.cancelled_at),
    }
    return OrderFact(p.order_id, p.version, facts)


def _shipment_dispatched(p: c.ShipmentDispatched) -> Fact:
    shipment = p.shipment
    return PartFact(
        PartKind.SHIPMENT,
        shipment.id,
        shipment.version,
        _dump(shipment, exclude={"order_id"}),
        {"order_id": shipment.order_id},
    )


def _shipment_delivered(p: c.ShipmentDelivered) -> Fact:
    facts = {"status": "delivered", "delivered_at": _iso(p.delivered_at), "signed_by": p.signed_by}
    return PartFact(PartKind.SHIPMENT, p.shipment_id, p.version, facts, {"order_id": p.order_id})


def _shipment_exception(p: c.ShipmentExceptionRaised) -> Fact:
    problem = {
        "code": p.code.value,
        "description": p.description,
        "occurred_at": _iso(p.occurred_at),
    }
    facts = {"status": "exception", "exception": problem}
    return PartFact(PartKind.SHIPMENT, p.shipment_id, p.version, facts, {"order_id": p.order_id})


def _return_requested(p: c.ReturnRequested) -> Fact:
    rma = p.rma
    links = {"order_id": rma.order_id, "case_id": rma.case_id}
    facts = _dump(rma, exclude={"order_id", "customer_id"})
    return PartFact(PartKind.RETURN, rma.id, rma.version, facts, links)


def _return_authorized(p: c.ReturnAuthorized) -> Fact:
    facts = {
        "status": "authorized",
        "authorized_at": _iso(p.authorized_at),
        "expires_at": _iso(p.expires_at),
        "label_reference": p.label_reference,
    }
    return PartFact(PartKind.RETURN, p.rma_id, p.version, facts, {"order_id": p.order_id})


def _return_received(p: c.ReturnReceived) -> Fact:
    facts = {
        "status": "received",
        "received_at": _iso(p.received_at),
        "received_lines": [_dump(line) for line in p.lines],
    }
    return PartFact(PartKind.RETURN, p.rma_id, p.version, facts, {"order_id": p.order_id})


def _return_inspected(p: c.ReturnInspected) -> Fact:
    facts = {
        "status": "inspected",
        "inspected_at": _iso(p.inspected_at),
        "inspection": [_dump(line) for line in p.lines],
    }
    return PartFact(PartKind.RETURN, p.rma_id, p.version, facts)


def _refund_requested(p: c.RefundRequested) -> Fact:
    refund = p.refund
    links = {"order_id": refund.order_id, "rma_id": refund.rma_id, "case_id": refund.case_id}
    facts = _dump(refund, exclude={"order_id", "customer_id"})
    return PartFact(PartKind.REFUND, refund.id, refund.version, facts, links)


def _refund_approved(p: c.RefundApproved) -> Fact:
    facts = {
        "status": "approved",
        "amount": _dump(p.amount),
        "approved_by": p.approved_by,
        "approved_at": _iso(p.approved_at),
    }
    return PartFact(PartKind.REFUND, p.refund_id, p.version, facts)


def _refund_rejected(p: c.RefundRejected) -> Fact:
    facts = {"status": "rejected", "rejected_reason": p.reason}
    return PartFact(PartKind.REFUND, p.refund_id, p.version, facts)


def _refund_completed(p: c.RefundCompleted) -> Fact:
    facts = {
        "status": "completed",
        "amount": _dump(p.amount),
        "payment_reference": p.payment_reference,
        "completed_at": _iso(p.completed_at),
    }
    return PartFact(PartKind.REFUND, p.refund_id, p.version, facts)


def _refund_failed(p: c.RefundFailed) -> Fact:
    facts = {
        "status": "failed",
        "failure_reason": p.reason,
        "retryable": p.retryable,
        "failed_at": _iso(p.failed_at),
    }
    return PartFact(PartKind.REFUND, p.refund_id, p.version, facts)


def _case_opened(p: c.CaseOpened) -> Fact:
    case = p.case
    facts = _dump(case, exclude={"order_id", "customer_id", "description", "tags"})
    return PartFact(PartKind.CASE, case.id, case.version, facts, {"order_id": case.order_id})


def _case_updated(p: c.CaseUpdated) -> Fact:
    facts = {
        "status": p.status.value,
        "priority": p.priority.value if p.priority else None,
        "assignee": p.assignee,
        "updated_at": _iso(p.updated_at),
        "last_note": p.note,
    }
    return PartFact(PartKind.CASE, p.case_id, p.version, facts)


def _posted(p: c.InvoicePosted | c.CreditNotePosted) -> Fact:
    credit = isinstance(p, c.CreditNotePosted)
    facts = {
        "kind": "credit_note" if credit else "invoice",
        "status": "posted",
        "amount": _dump(p.amount),
        "tax": _dump(p.tax),
        "document_number": p.document_number,
        "posted_at": _iso(p.posted_at),
    }
    links: dict[str, str | None] = {"order_id": p.order_id}
    if isinstance(p, c.CreditNotePosted):
        facts.update(rma_id=p.rma_id, refund_id=p.refund_id, reason=p.reason)
        links["rma_id"] = p.rma_id
    return PartFact(PartKind.POSTING, p.posting_id, p.version, facts, links)


_FACTS: dict[type[c.EventPayload], Callable[[Any], Fact]] = {
    c.OrderCreated: _order_created,
    c.OrderStatusChanged: _order_status,
    c.OrderCancelled: _order_cancelled,
    c.ShipmentDispatched: _shipment_dispatched,
    c.ShipmentDelivered: _shipment_delivered,
    c.ShipmentExceptionRaised: _shipment_exception,
    c.ReturnRequested: _return_requested,
    c.ReturnAuthorized: _return_authorized,
    c.ReturnReceived: _return_received,
    c.ReturnInspected: _return_inspected,
    c.RefundRequested: _refund_requested,
    c.RefundApproved: _refund_approved,
    c.RefundRejected: _refund_rejected,
    c.RefundCompleted: _refund_completed,
    c.RefundFailed: _refund_failed,
    c.CaseOpened: _case_opened,
    c.CaseUpdated: _case_updated,
    c.InvoicePosted: _posted,
    c.CreditNotePosted: _posted,
}

ORDER_360_EVENT_TYPES: tuple[str, ...] = tuple(c.event_type_of(payload) for payload in _FACTS)
"""The event types the order 360 is built from."""


def fact_from_event(event: CloudEvent) -> Fact | None:
    """What ``event`` says for the order 360, or None when it says nothing for it.

    Raises :class:`~retailsync.domain.errors.EventPayloadInvalid` for a malformed payload (the
    bus routes it to the exception queue).
    """
    if event.type not in ORDER_360_EVENT_TYPES:
        return None
    payload = c.parse_event(event)
    return _FACTS[type(payload)](payload)


# --- writing ----------------------------------------------------------------------------------


def _load_order(row: Any) -> dict[str, Any]:
    return {
        "order": json.loads(row.document) if row.document else None,
        "status": row.status,
        "status_reason": row.status_reason,
        "status_changed_at": _iso(row.status_changed_at),
    }


def _order_values(document: dict[str, Any], version: int | None, now: datetime) -> dict[str, Any]:
    changed_at = document.get("status_changed_at")
    return {
        "document": json.dumps(document["order"]) if document.get("order") else None,
        "status": document.get("status"),
        "status_reason": document.get("status_reason"),
        "status_changed_at": datetime.fromisoformat(changed_at) if changed_at else None,
        "version": version,
        "updated_at": now,
    }


def _apply_order(connection: sa.Connection, fact: OrderFact, now: datetime) -> bool:
    t = views_orders
    row = connection.execute(sa.select(t).where(t.c.order_id == fact.order_id)).first()
    current = _load_order(row) if row is not None else None
    merged = merge_facts(current, row.version if row else None, fact.facts, fact.version)
    if not merged.changed:
        return False
    values = _order_values(merged.document, merged.version, now)
    if row is None:
        connection.execute(t.insert().values(order_id=fact.order_id, **values))
    else:
        connection.execute(t.update().where(t.c.order_id == fact.order_id).values(**values))
    return True


def _apply_part(connection: sa.Connection, fact: PartFact, now: datetime) -> bool:
    t = views_order_parts
    key = (t.c.kind == fact.kind.value) & (t.c.entity_id == fact.entity_id)
    row = connection.execute(sa.select(t).where(key)).first()
    current = json.loads(row.document) if row is not None else None
    merged = merge_facts(current, row.version if row else None, fact.facts, fact.version)
    links = {
        name: (getattr(row, name) if row is not None else None) or fact.links.get(name)
        for name in ("order_id", "rma_id", "case_id")
    }
    links_changed = row is not None and any(getattr(row, n) != v for n, v in links.items())
    if not merged.changed and not links_changed:
        return False
    values = {
        **links,
        "version": merged.version,
        "status": merged.document.get("status"),
        "document": json.dumps(merged.document),
        "updated_at": now,
    }
    if row is None:
        connection.execute(
            t.insert().values(kind=fact.kind.value, entity_id=fact.entity_id, **values)
        )
    else:
        connection.execute(t.update().where(key).values(**values))
    return True


def apply_event(
    connection: sa.Connection, event: CloudEvent, *, now: datetime | None = None
) -> bool:
    """Merge what ``event`` says into the read model; True when a row changed."""
    fact = fact_from_event(event)
    if fact is None:
        return False
    when = now or datetime.now(UTC)
    if isinstance(fact, OrderFact):
        return _apply_order(connection, fact, when)
    return _apply_part(connection, fact, when)


async def handle_order_360_event(event: CloudEvent, ctx: DeliveryContext) -> None:
    """Bus handler: apply ``event`` in the delivery's transaction (exactly once per event)."""
    apply_event(ctx.connection, event)


def order_360_subscription() -> Subscription:
    """The bus subscription that keeps the order 360 read model current."""
    return Subscription(
        name=SUBSCRIPTION_NAME,
        handler=handle_order_360_event,
        filter=EventFilter(types=ORDER_360_EVENT_TYPES),
    )
