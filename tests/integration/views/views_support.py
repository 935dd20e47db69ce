"""Canonical events about one order, for the order 360 tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from retailsync.domain.cases import ServiceCase
from retailsync.domain.catalogue import (
    CaseOpened,
    InvoicePosted,
    OrderCreated,
    OrderStatusChanged,
    RefundCompleted,
    RefundRequested,
    ReturnAuthorized,
    ReturnRequested,
    ShipmentDelivered,
    ShipmentDispatched,
    ShipmentExceptionRaised,
    build_event,
)
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.domain.refunds import Refund
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason
from retailsync.domain.shipments import Shipment, ShipmentExceptionCode, ShipmentLine
from retailsync.ports.erp import ErpOrderState

IssueKey = Callable[..., str]
"""``issue_key("experience:read", ...)`` -> a fresh API key holding those scopes."""

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def erp_processing(order_id: str) -> ErpOrderState:
    """What a scripted ERP answers for an order it holds: processing, shipment waiting."""
    return ErpOrderState(
        order_id=order_id,
        erp_id="7",
        status=OrderStatus.PROCESSING,
        erp_state="processing / shipment waiting / invoice pending",
        total=eur("73.21"),
        cancellable=True,
    )


def make_order(order_id: str | None = None, placed_at: dt.datetime = T0) -> Order:
    lines = [
        OrderLine.priced(
            line_no=1, sku="RS-TSHIRT-M", quantity=2, unit_price=eur("19.90"), tax=eur("7.56")
        ),
        OrderLine.priced(
            line_no=2, sku="RS-CAP", quantity=1, unit_price=eur("15.00"), tax=eur("2.85")
        ),
    ]
    return Order.place(
        id=order_id or new_id(EntityKind.ORDER),
        channel="shopify",
        currency="EUR",
        lines=lines,
        placed_at=placed_at,
    )


@dataclass
class OrderStory:
    """One order's life as events: placed, shipped (with a carrier exception, then delivered),
    a case, a return of one T-shirt, its refund, and the invoice."""

    order: Order = field(default_factory=make_order)
    shipment_id: str = field(default_factory=lambda: new_id(EntityKind.SHIPMENT))
    rma_id: str = field(default_factory=lambda: new_id(EntityKind.RETURN))
    refund_id: str = field(default_factory=lambda: new_id(EntityKind.REFUND))
    case_id: str = field(default_factory=lambda: new_id(EntityKind.CASE))
    posting_id: str = field(default_factory=lambda: new_id(EntityKind.POSTING))

    def at(self, hours: float) -> dt.datetime:
        return T0 + dt.timedelta(hours=hours)

    def placed(self) -> CloudEvent:
        return build_event(OrderCreated(order=self.order), source="test/shop")

    def confirmed(self) -> CloudEvent:
        return build_event(
            OrderStatusChanged(
                order_id=self.order.id,
                version=2,
                to_status=OrderStatus.CONFIRMED,
                changed_at=self.at(1),
            ),
            source="test/erp",
        )

    def shipped_status(self) -> CloudEvent:
        return build_event(
            OrderStatusChanged(
                order_id=self.order.id,
                version=3,
                to_status=OrderStatus.SHIPPED,
                changed_at=self.at(5),
                reason="all parcels left",
            ),
            source="test/erp",
        )

    def dispatched(self) -> CloudEvent:
        shipment = Shipment(
            id=self.shipment_id,
            version=1,
            order_id=self.order.id,
            status="dispatched",
            carrier="DHL",
            tracking_number="JD0001",
            lines=[
                ShipmentLine(sku="RS-TSHIRT-M", quantity=2, order_line_no=1),
                ShipmentLine(sku="RS-CAP", quantity=1, order_line_no=2),
            ],
            dispatched_at=self.at(4),
        )
        return build_event(ShipmentDispatched(shipment=shipment), source="test/wms")

    def carrier_exception(self) -> CloudEvent:
        return build_event(
            ShipmentExceptionRaised(
                shipment_id=self.shipment_id,
                order_id=self.order.id,
                version=2,
                code=ShipmentExceptionCode.DELAYED,
                description="hub congestion",
                occurred_at=self.at(20),
            ),
            source="test/carrier",
        )

    def delivered(self) -> CloudEvent:
        return build_event(
            ShipmentDelivered(
                shipment_id=self.shipment_id,
                order_id=self.order.id,
                version=3,
                delivered_at=self.at(30),
            ),
            source="test/carrier",
        )

    def case_opened(self) -> CloudEvent:
        case = ServiceCase(
            id=self.case_id,
            subject="Where is my parcel?",
            order_id=self.order.id,
            opened_at=self.at(21),
        )
        return build_event(CaseOpened(case=case), source="test/zendesk")

    def return_requested(self) -> CloudEvent:
        rma = ReturnAuthorization(
            id=self.rma_id,
            order_id=self.order.id,
            case_id=self.case_id,
            lines=[
                ReturnLine(
                    sku="RS-TSHIRT-M", quantity=1, reason=ReturnReason.DAMAGED, order_line_no=1
                )
            ],
            requested_at=self.at(40),
        )
        return build_event(ReturnRequested(rma=rma), source="test/zendesk")

    def return_authorized(self) -> CloudEvent:
        return build_event(
            ReturnAuthorized(
                rma_id=self.rma_id, order_id=self.order.id, version=2, authorized_at=self.at(41)
            ),
            source="test/hub",
        )

    def refund_requested(self) -> CloudEvent:
        refund = Refund(
            id=self.refund_id,
            amount=eur("19.90"),
            reason="damaged T-shirt",
            rma_id=self.rma_id,
            requested_at=self.at(42),
        )
        return build_event(RefundRequested(refund=refund), source="test/hub")

    def refund_completed(self) -> CloudEvent:
        return build_event(
            RefundCompleted(
                refund_id=self.refund_id,
                version=3,
                amount=eur("19.90"),
                payment_reference="re_1",
                completed_at=self.at(43),
            ),
            source="test/stripe",
        )

    def invoiced(self) -> CloudEvent:
        return build_event(
            InvoicePosted(
                posting_id=self.posting_id,
                version=1,
                document_number="INV-1",
                order_id=self.order.id,
                amount=self.order.grand_total,
                posted_at=self.at(3),
            ),
            source="test/erp",
        )

    def all_events(self) -> list[CloudEvent]:
        return [
            self.placed(),
            self.confirmed(),
            self.invoiced(),
            self.dispatched(),
            self.shipped_status(),
            self.carrier_exception(),
            self.case_opened(),
            self.delivered(),
            self.return_requested(),
            self.return_authorized(),
            self.refund_requested(),
            self.refund_completed(),
        ]
