"""Canonical events of one order's life, with pinned business times: for the KPI, SLA and
trace tests, ``bench/observability.py`` and demos. Not used by the hub itself.

``RetailJourney(order_id=..., channel="web", country="GB")`` builds real catalogue events
(validated by the domain models), so the KPIs are tested against the payloads the hub emits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from retailsync.domain.cases import ServiceCase
from retailsync.domain.catalogue import (
    CaseOpened,
    InventoryAdjusted,
    OrderCreated,
    OrderStatusChanged,
    RefundCompleted,
    RefundRequested,
    ReturnAuthorized,
    ReturnReceived,
    ReturnRequested,
    ShipmentDispatched,
    build_event,
)
from retailsync.domain.customers import Address, AddressRole
from retailsync.domain.events import CloudEvent
from retailsync.domain.identifiers import EntityKind, new_id
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderLine, OrderStatus
from retailsync.domain.refunds import Refund
from retailsync.domain.returns import ReturnAuthorization, ReturnLine, ReturnReason
from retailsync.domain.shipments import Shipment, ShipmentLine, ShipmentStatus
from retailsync.observability.kpis import EventRecord

ERP_SOURCE = "urn:retailsync:erp:tryton"
SHOP_SOURCE = "retailsync/connectors/shopify"
HUB_SOURCE = "/retailsync/workflows"


def record_of(event: CloudEvent) -> EventRecord:
    """The KPI input for a stored event."""
    return EventRecord(
        type=event.type,
        source=event.source,
        data=event.data,
        time=event.time,
        correlation_id=event.correlationid,
        event_id=event.id,
    )


@dataclass
class RetailJourney:
    """Builds the events of one order; each method returns one CloudEvent."""

    channel: str = "web"
    country: str = "GB"
    correlation_id: str | None = None
    order_id: str = field(default_factory=lambda: new_id(EntityKind.ORDER))
    rma_id: str = field(default_factory=lambda: new_id(EntityKind.RETURN))
    refund_id: str = field(default_factory=lambda: new_id(EntityKind.REFUND))
    case_id: str | None = None
    sku: str = "SKU-1"

    def _event(self, payload: object, source: str, at: datetime, **kw: str | None) -> CloudEvent:
        return build_event(
            payload,  # type: ignore[arg-type]
            source=source,
            correlationid=kw.get("correlationid", self.correlation_id),
            causationid=kw.get("causationid"),
            time=at,
        )

    def order_created(self, at: datetime) -> CloudEvent:
        line = OrderLine.priced(
            line_no=1,
            sku=self.sku,
            quantity=1,
            unit_price=Money.of("40.00", "EUR"),
            tax=Money.of("8.00", "EUR"),
        )
        order = Order.place(
            id=self.order_id,
            channel=self.channel,
            currency="EUR",
            lines=[line],
            placed_at=at,
            shipping_address=Address(
                role=AddressRole.SHIPPING, line1="1 Market St", city="Leeds", country=self.country
            ),
        )
        return self._event(OrderCreated(order=order), SHOP_SOURCE, at)

    def status_changed(
        self, at: datetime, to: OrderStatus, *, version: int = 2, correlationid: str | None = None
    ) -> CloudEvent:
        payload = OrderStatusChanged(
            order_id=self.order_id, version=version, to_status=to, changed_at=at
        )
        return self._event(
            payload, ERP_SOURCE, at, correlationid=correlationid or self.correlation_id
        )

    def shipment_dispatched(self, at: datetime) -> CloudEvent:
        shipment = Shipment(
            id=new_id(EntityKind.SHIPMENT),
            order_id=self.order_id,
            status=ShipmentStatus.DISPATCHED,
            carrier="DHL",
            lines=[ShipmentLine(sku=self.sku, quantity=1)],
            dispatched_at=at,
        )
        return self._event(ShipmentDispatched(shipment=shipment), ERP_SOURCE, at)

    def case_opened(self, at: datetime) -> CloudEvent:
        self.case_id = self.case_id or new_id(EntityKind.CASE)
        case = ServiceCase(
            id=self.case_id, subject="Damaged item", order_id=self.order_id, opened_at=at
        )
        return self._event(CaseOpened(case=case), "retailsync/connectors/zendesk", at)

    def return_requested(self, at: datetime) -> CloudEvent:
        rma = ReturnAuthorization(
            id=self.rma_id,
            order_id=self.order_id,
            case_id=self.case_id,
            lines=[ReturnLine(sku=self.sku, quantity=1, reason=ReturnReason.DAMAGED)],
            requested_at=at,
        )
        return self._event(ReturnRequested(rma=rma), HUB_SOURCE, at)

    def return_authorized(self, at: datetime) -> CloudEvent:
        payload = ReturnAuthorized(
            rma_id=self.rma_id, order_id=self.order_id, version=2, authorized_at=at
        )
        return self._event(payload, HUB_SOURCE, at)

    def return_received(self, at: datetime) -> CloudEvent:
        from retailsync.domain.catalogue import ReceivedLine

        payload = ReturnReceived(
            rma_id=self.rma_id,
            order_id=self.order_id,
            version=3,
            location="WH1",
            lines=[ReceivedLine(sku=self.sku, quantity=1)],
            received_at=at,
        )
        return self._event(payload, HUB_SOURCE, at)

    def refund_requested(self, at: datetime, *, for_return: bool = True) -> CloudEvent:
        refund = Refund(
            id=self.refund_id,
            amount=Money.of("48.00", "EUR"),
            reason="damaged",
            order_id=self.order_id,
            rma_id=self.rma_id if for_return else None,
            case_id=self.case_id,
            requested_at=at,
        )
        return self._event(RefundRequested(refund=refund), HUB_SOURCE, at)

    def refund_completed(self, at: datetime) -> CloudEvent:
        payload = RefundCompleted(
            refund_id=self.refund_id,
            version=3,
            amount=Money.of("48.00", "EUR"),
            payment_reference="re_123",
            completed_at=at,
        )
        return self._event(payload, HUB_SOURCE, at)

    def stock_adjusted(self, at: datetime, delta: int = -1) -> CloudEvent:
        adjustment = InventoryAdjustment(
            id=new_id(EntityKind.INVENTORY_ADJUSTMENT),
            sku=self.sku,
            location="WH1",
            delta=delta,
            reason=AdjustmentReason.SOLD,
            occurred_at=at,
        )
        return self._event(InventoryAdjusted(adjustment=adjustment), ERP_SOURCE, at)
