"""Reading the order 360 from the read model, and composing the answer (no ERP call here).

:func:`order_360` is what the console and the experience API call: it answers from the read
model alone. :func:`compose_order_360` is the pure part: rows in, view out, with the ERP's
last confirmed snapshot merged in and the freshness the caller determined.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retailsync.bus.tables import exceptions as bus_exceptions
from retailsync.domain.finance import PostingKind, PostingStatus
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderLine, OrderStatus
from retailsync.domain.refunds import RefundStatus
from retailsync.domain.returns import ReturnStatus
from retailsync.domain.shipments import ShipmentStatus
from retailsync.views.errors import OrderNotInReadModel
from retailsync.views.models import (
    CaseView,
    ErpOrderSnapshot,
    ErpView,
    ExceptionKind,
    OpenException,
    Order360View,
    OrderHeader,
    OrderLineView,
    PaymentState,
    PaymentStatus,
    PostingView,
    RefundView,
    ReturnView,
    ShipmentView,
)
from retailsync.views.projection import PartKind
from retailsync.views.tables import views_order_parts, views_orders

__all__ = [
    "Freshness",
    "Order360Rows",
    "age_seconds",
    "compose_order_360",
    "erp_snapshot_from_json",
    "load_order_360_rows",
    "order_360",
    "recorded_freshness",
]

OPEN_EXCEPTION_STATUSES = ("open", "retrying", "permanently_failed")
SHIPPED = frozenset(
    {
        ShipmentStatus.DISPATCHED,
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.EXCEPTION,
        ShipmentStatus.DELIVERED,
    }
)
RETURN_VOID = frozenset({ReturnStatus.REJECTED, ReturnStatus.CANCELLED, ReturnStatus.EXPIRED})
REFUND_PENDING = frozenset(
    {
        RefundStatus.REQUESTED,
        RefundStatus.PENDING_APPROVAL,
        RefundStatus.APPROVED,
        RefundStatus.PROCESSING,
    }
)
_STATUS_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.ON_HOLD: 0,
    OrderStatus.CONFIRMED: 1,
    OrderStatus.PROCESSING: 2,
    OrderStatus.PARTIALLY_SHIPPED: 3,
    OrderStatus.SHIPPED: 4,
    OrderStatus.DELIVERED: 5,
    OrderStatus.COMPLETED: 6,
    OrderStatus.CANCELLED: 7,
}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=4096)
def erp_snapshot_from_json(text: str) -> ErpOrderSnapshot:
    """The ERP snapshot stored as ``text``, parsed once per distinct text.

    Every answer about an order reads the same stored snapshot until the ERP is checked again;
    parsing it (a dozen Money and Shipment validations) was most of an answer's CPU. The
    snapshot model is frozen, so sharing one instance between answers is safe.
    """
    return ErpOrderSnapshot.model_validate_json(text)


def age_seconds(as_of: datetime, now: datetime) -> float:
    """How old an answer as of ``as_of`` is at ``now``, as the order 360 reports it."""
    return round(max(0.0, (now - as_of).total_seconds()), 3)


@dataclass(frozen=True)
class Order360Rows:
    """The read model's rows for one order."""

    order_id: str
    order: Any | None  # the views_orders row
    parts: Sequence[Any] = ()
    exceptions: Sequence[Any] = ()

    @property
    def erp_checked_at(self) -> datetime | None:
        return _utc(self.order.erp_checked_at) if self.order is not None else None

    @property
    def erp_failed_at(self) -> datetime | None:
        return _utc(self.order.erp_failed_at) if self.order is not None else None

    @property
    def erp_snapshot(self) -> ErpOrderSnapshot | None:
        if self.order is None or not self.order.erp_snapshot:
            return None
        return erp_snapshot_from_json(self.order.erp_snapshot)

    @property
    def updated_at(self) -> datetime:
        """When the read model last changed for this order."""
        stamps = [_utc(part.updated_at) for part in self.parts]
        if self.order is not None:
            stamps.append(_utc(self.order.updated_at))
        known = [stamp for stamp in stamps if stamp is not None]
        return max(known) if known else datetime.now(UTC)


@dataclass(frozen=True)
class Freshness:
    """How current an answer is: ``stale`` with the reason, and as of when."""

    stale: bool
    as_of: datetime
    reason: str | None = None
    snapshot: ErpOrderSnapshot | None = None
    checked_at: datetime | None = None


def _order_360_statements() -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """The three reads of an order 360, built once: bound per request by parameters."""
    orders, parts, queue = views_orders, views_order_parts, bus_exceptions
    order_id = sa.bindparam("order_id", type_=sa.String)
    order = sa.select(orders).where(orders.c.order_id == order_id)
    linked = sa.select(parts.c.entity_id).where(parts.c.order_id == order_id)
    found = sa.select(parts).where(
        sa.or_(
            parts.c.order_id == order_id,
            parts.c.rma_id.in_(linked.where(parts.c.kind == PartKind.RETURN.value)),
            parts.c.case_id.in_(linked.where(parts.c.kind == PartKind.CASE.value)),
        )
    )
    entries = (
        sa.select(
            queue.c.id,
            queue.c.partition_key,
            queue.c.event_type,
            queue.c.classification,
            queue.c.error_message,
            queue.c.created_at,
        )
        .where(
            queue.c.partition_key.in_(sa.bindparam("keys", expanding=True)),
            queue.c.status.in_(OPEN_EXCEPTION_STATUSES),
        )
        .order_by(queue.c.created_at)
        .limit(50)
    )
    return order, found, entries


# Building a statement costs more than running it on an agent's hot path: build them once.
_ORDER, _PARTS, _EXCEPTIONS = _order_360_statements()


def load_order_360_rows(connection: sa.Connection, order_id: str) -> Order360Rows | None:
    """Every row the order 360 of ``order_id`` is built from; None when nothing is known."""
    bound = {"order_id": order_id}
    order = connection.execute(_ORDER, bound).first()
    found = connection.execute(_PARTS, bound).all()
    if order is None and not found:
        return None
    keys = [order_id, *(part.entity_id for part in found)]
    entries = connection.execute(_EXCEPTIONS, {"keys": keys}).all()
    return Order360Rows(order_id, order, found, entries)


def recorded_freshness(rows: Order360Rows) -> Freshness:
    """Freshness from what the read model recorded: stale when the last ERP check failed."""
    checked, failed = rows.erp_checked_at, rows.erp_failed_at
    snapshot = rows.erp_snapshot
    if failed is not None and (checked is None or failed > checked):
        reason = rows.order.erp_failure if rows.order is not None else None
        return Freshness(True, checked or rows.updated_at, reason, snapshot, checked)
    return Freshness(False, checked or rows.updated_at, None, snapshot, checked)


def order_360(engine: Engine, order_id: str, *, now: datetime | None = None) -> Order360View:
    """The order 360 of ``order_id`` from the read model alone (no ERP call).

    ``stale`` is true when the hub's last attempt to confirm the order with the ERP failed.
    Raises :class:`~retailsync.views.errors.OrderNotInReadModel` for an unknown order.
    """
    with engine.connect() as connection:
        rows = load_order_360_rows(connection, order_id)
    if rows is None:
        raise OrderNotInReadModel(order_id)
    return compose_order_360(rows, recorded_freshness(rows), now=now)


# --- composing --------------------------------------------------------------------------------


def _documents(rows: Order360Rows, kind: PartKind) -> list[dict[str, Any]]:
    return [
        {"id": part.entity_id, **json.loads(part.document)}
        for part in rows.parts
        if part.kind == kind.value
    ]


def _known(value: Any) -> bool:
    return value is not None and value != [] and value != {}


def _overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    return {**base, **{key: value for key, value in top.items() if _known(value)}}


def _shipments(rows: Order360Rows, snapshot: ErpOrderSnapshot | None) -> list[ShipmentView]:
    # Carriers and the warehouse know more about a parcel on its way than the ERP does.
    by_id = {doc["id"]: doc for doc in _documents(rows, PartKind.SHIPMENT)}
    for shipment in snapshot.shipments if snapshot else ():
        erp = shipment.model_dump(mode="json", exclude={"order_id"})
        by_id[shipment.id] = _overlay(erp, by_id.get(shipment.id, {}))
    views = [ShipmentView.model_validate(doc) for doc in by_id.values()]
    return sorted(views, key=lambda s: (s.dispatched_at is None, s.dispatched_at or 0, s.id))


def _postings(rows: Order360Rows, snapshot: ErpOrderSnapshot | None) -> list[PostingView]:
    # The ERP owns the books: what it said last wins over what events said before.
    by_id = {doc["id"]: doc for doc in _documents(rows, PartKind.POSTING)}
    for posting in snapshot.postings if snapshot else ():
        erp = posting.model_dump(mode="json", exclude={"order_id", "customer_id"})
        by_id[posting.id] = _overlay(by_id.get(posting.id, {}), erp)
    return sorted(
        (PostingView.model_validate(doc) for doc in by_id.values()),
        key=lambda p: (p.posted_at is None, p.posted_at or 0, p.id),
    )


def _status(rows: Order360Rows, snapshot: ErpOrderSnapshot | None) -> OrderStatus | None:
    candidates = []
    if rows.order is not None and rows.order.status:
        candidates.append(OrderStatus(rows.order.status))
    if snapshot is not None:
        candidates.append(snapshot.status)
    return max(candidates, key=_STATUS_RANK.__getitem__) if candidates else None


def _header(rows: Order360Rows) -> tuple[OrderHeader, list[OrderLine]]:
    document = json.loads(rows.order.document) if rows.order and rows.order.document else None
    if document is None:
        return OrderHeader(id=rows.order_id), []
    header = OrderHeader.model_validate(
        {**document, "version": rows.order.version if rows.order else None}, strict=False
    )
    return header, [OrderLine.model_validate(line) for line in document["lines"]]


def _matches(line: OrderLine, line_no: int | None, sku: str) -> bool:
    return line_no == line.line_no if line_no is not None else sku == line.sku


def _line_views(
    lines: Iterable[OrderLine], shipments: Sequence[ShipmentView], returns: Sequence[ReturnView]
) -> list[OrderLineView]:
    views = []
    for line in lines:
        shipped = sum(
            item.quantity
            for shipment in shipments
            if shipment.status in SHIPPED
            for item in shipment.lines
            if _matches(line, item.order_line_no, item.sku)
        )
        returned = sum(
            item.quantity
            for rma in returns
            if rma.status not in RETURN_VOID
            for item in rma.lines
            if _matches(line, item.order_line_no, item.sku)
        )
        views.append(
            OrderLineView(
                line_no=line.line_no,
                sku=line.sku,
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.line_total,
                shipped_quantity=min(shipped, line.quantity),
                returned_quantity=min(returned, line.quantity),
            )
        )
    return views


def _sum(amounts: Iterable[Money | None], currency: str) -> Money:
    return Money.total((a for a in amounts if a is not None and a.currency == currency), currency)


def _positive(amount: Money) -> bool:
    return not amount.is_zero() and not amount.is_negative()


def _payment(
    currency: str | None,
    grand_total: Money | None,
    postings: Sequence[PostingView],
    refunds: Sequence[RefundView],
) -> PaymentState | None:
    if currency is None:
        return None
    booked = {PostingStatus.POSTED, PostingStatus.SETTLED}
    invoices = [p for p in postings if p.kind is PostingKind.INVOICE and p.status in booked]
    invoiced = _sum((p.amount for p in invoices), currency)
    settled = _sum((p.amount for p in invoices if p.status is PostingStatus.SETTLED), currency)
    credited = _sum(
        (p.amount for p in postings if p.kind is PostingKind.CREDIT_NOTE and p.status in booked),
        currency,
    )
    refunded = _sum((r.amount for r in refunds if r.status is RefundStatus.COMPLETED), currency)
    pending = _sum((r.amount for r in refunds if r.status in REFUND_PENDING), currency)
    total = grand_total if grand_total is not None else invoiced
    if _positive(refunded) and refunded >= total:
        status = PaymentStatus.REFUNDED
    elif _positive(refunded):
        status = PaymentStatus.PARTIALLY_REFUNDED
    elif _positive(invoiced) and settled >= invoiced:
        status = PaymentStatus.PAID
    elif _positive(invoiced):
        status = PaymentStatus.INVOICED
    else:
        status = PaymentStatus.NOT_INVOICED
    return PaymentState(
        status=status,
        invoiced=invoiced,
        settled=settled,
        credited=credited,
        refunded=refunded,
        refund_pending=pending,
    )


def _open_exceptions(
    rows: Order360Rows, shipments: Sequence[ShipmentView], refunds: Sequence[RefundView]
) -> list[OpenException]:
    found = [
        OpenException(
            kind=ExceptionKind.SHIPMENT,
            reference=s.id,
            code=s.exception.code.value,
            description=s.exception.description,
            since=s.exception.occurred_at,
        )
        for s in shipments
        if s.status is ShipmentStatus.EXCEPTION and s.exception is not None
    ]
    found += [
        OpenException(
            kind=ExceptionKind.REFUND,
            reference=r.id,
            code="refund_failed",
            description=r.failure_reason,
            since=r.failed_at,
        )
        for r in refunds
        if r.status is RefundStatus.FAILED
    ]
    found += [
        OpenException(
            kind=ExceptionKind.INTEGRATION,
            reference=entry.partition_key or rows.order_id,
            code=f"{entry.classification}:{entry.event_type}",
            description=entry.error_message,
            since=_utc(entry.created_at),
            exception_id=entry.id,
        )
        for entry in rows.exceptions
    ]
    return found


def compose_order_360(
    rows: Order360Rows, freshness: Freshness, *, now: datetime | None = None
) -> Order360View:
    """The order 360 from the read model's rows and the ERP snapshot in ``freshness``."""
    now = now or datetime.now(UTC)
    snapshot = freshness.snapshot
    header, lines = _header(rows)
    shipments = _shipments(rows, snapshot)
    returns = sorted(
        (ReturnView.model_validate(d) for d in _documents(rows, PartKind.RETURN)),
        key=lambda r: (r.requested_at is None, r.requested_at or 0, r.id),
    )
    refunds = sorted(
        (RefundView.model_validate(d) for d in _documents(rows, PartKind.REFUND)),
        key=lambda r: (r.requested_at is None, r.requested_at or 0, r.id),
    )
    cases = sorted(
        (CaseView.model_validate(d) for d in _documents(rows, PartKind.CASE)),
        key=lambda c: (c.opened_at is None, c.opened_at or 0, c.id),
    )
    postings = _postings(rows, snapshot)
    currency = header.currency or (snapshot.total.currency if snapshot else None)
    erp = (
        ErpView(
            status=snapshot.status,
            erp_state=snapshot.erp_state,
            total=snapshot.total,
            cancellable=snapshot.cancellable,
            checked_at=freshness.checked_at or freshness.as_of,
        )
        if snapshot is not None
        else None
    )
    return Order360View(
        order_id=rows.order_id,
        stale=freshness.stale,
        as_of=freshness.as_of,
        age_seconds=age_seconds(freshness.as_of, now),
        stale_reason=freshness.reason,
        status=_status(rows, snapshot),
        status_reason=rows.order.status_reason if rows.order is not None else None,
        order=header,
        lines=_line_views(lines, shipments, returns),
        payment=_payment(currency, header.grand_total, postings, refunds),
        shipments=shipments,
        returns=returns,
        refunds=refunds,
        postings=postings,
        open_exceptions=_open_exceptions(rows, shipments, refunds),
        cases=cases,
        erp=erp,
    )
