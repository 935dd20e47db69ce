"""Shipments of order lines to the customer, with the shipment lifecycle table."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from retailsync.domain.base import (
    CanonicalModel,
    HttpUrl,
    LocationCode,
    Quantity,
    ShortText,
    Sku,
    Timestamp,
    Version,
)
from retailsync.domain.errors import IllegalShipmentTransition
from retailsync.domain.identifiers import OrderId, ShipmentId
from retailsync.domain.lifecycle import Lifecycle

__all__ = [
    "SHIPMENT_LIFECYCLE",
    "SHIPMENT_TRANSITIONS",
    "Shipment",
    "ShipmentExceptionCode",
    "ShipmentLine",
    "ShipmentStatus",
]


class ShipmentStatus(StrEnum):
    """Where a parcel is between the warehouse and the customer."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    EXCEPTION = "exception"
    DELIVERED = "delivered"
    RETURNED_TO_SENDER = "returned_to_sender"
    LOST = "lost"
    CANCELLED = "cancelled"


_S = ShipmentStatus
SHIPMENT_TRANSITIONS: dict[ShipmentStatus, set[ShipmentStatus]] = {
    _S.PENDING: {_S.DISPATCHED, _S.CANCELLED},
    _S.DISPATCHED: {_S.IN_TRANSIT, _S.DELIVERED, _S.EXCEPTION},
    _S.IN_TRANSIT: {_S.DELIVERED, _S.EXCEPTION},
    _S.EXCEPTION: {_S.IN_TRANSIT, _S.DELIVERED, _S.RETURNED_TO_SENDER, _S.LOST},
    _S.DELIVERED: set(),
    _S.RETURNED_TO_SENDER: set(),
    _S.LOST: set(),
    _S.CANCELLED: set(),
}
"""Shipment status -> statuses it may move to next."""

SHIPMENT_LIFECYCLE = Lifecycle(ShipmentStatus, SHIPMENT_TRANSITIONS, IllegalShipmentTransition)


class ShipmentExceptionCode(StrEnum):
    """Why a carrier reports a shipment as not going to plan."""

    DELAYED = "delayed"
    DAMAGED = "damaged"
    LOST = "lost"
    ADDRESS_ISSUE = "address_issue"
    REFUSED = "refused"
    OTHER = "other"


class ShipmentLine(CanonicalModel):
    """Units of one SKU in a parcel."""

    sku: Sku
    quantity: Quantity
    order_line_no: int | None = Field(default=None, ge=1, le=10_000)


class Shipment(CanonicalModel):
    """A parcel (or set of parcels under one tracking number) for an order."""

    id: ShipmentId
    version: Version = 1
    order_id: OrderId
    status: ShipmentStatus = ShipmentStatus.PENDING
    carrier: ShortText
    service_level: ShortText | None = None
    tracking_number: ShortText | None = None
    tracking_url: HttpUrl | None = None
    ship_from: LocationCode | None = None
    lines: list[ShipmentLine] = Field(min_length=1, max_length=1000)
    dispatched_at: Timestamp | None = None
    delivered_at: Timestamp | None = None

    def transition_to(self, new_status: ShipmentStatus) -> Shipment:
        """A copy in ``new_status`` (version bumped); IllegalShipmentTransition if not allowed."""
        return SHIPMENT_LIFECYCLE.advance(self, new_status)
