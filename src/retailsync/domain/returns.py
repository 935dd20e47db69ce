"""Return authorizations (RMAs): what the customer sends back, why, and what inspection found."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from retailsync.domain.base import (
    CanonicalModel,
    LongText,
    Quantity,
    ShortText,
    Sku,
    Timestamp,
    Version,
)
from retailsync.domain.errors import IllegalReturnTransition
from retailsync.domain.identifiers import CaseId, CustomerId, OrderId, ReturnId
from retailsync.domain.lifecycle import Lifecycle

__all__ = [
    "RETURN_LIFECYCLE",
    "RETURN_TRANSITIONS",
    "InspectionOutcome",
    "InspectionResult",
    "ReturnAuthorization",
    "ReturnLine",
    "ReturnReason",
    "ReturnStatus",
]


class ReturnReason(StrEnum):
    """Why the customer returns a line."""

    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    CHANGED_MIND = "changed_mind"
    LATE_DELIVERY = "late_delivery"
    OTHER = "other"


class InspectionOutcome(StrEnum):
    """What the warehouse decided for returned units after looking at them."""

    RESTOCK = "restock"
    REFURBISH = "refurbish"
    SCRAP = "scrap"
    RETURN_TO_CUSTOMER = "return_to_customer"
    NOT_RECEIVED = "not_received"


class InspectionResult(CanonicalModel):
    """The warehouse's verdict on one returned line."""

    outcome: InspectionOutcome
    accepted_quantity: int = Field(ge=0, le=1_000_000)
    inspected_at: Timestamp
    notes: LongText | None = None


class ReturnLine(CanonicalModel):
    """Units of one SKU the customer returns, with the reason and (later) the inspection."""

    sku: Sku
    quantity: Quantity
    reason: ReturnReason
    order_line_no: int | None = Field(default=None, ge=1, le=10_000)
    comment: LongText | None = None
    inspection: InspectionResult | None = None


class ReturnStatus(StrEnum):
    """Where a return authorization is between request and close."""

    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    REJECTED = "rejected"
    RECEIVED = "received"
    INSPECTED = "inspected"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


_S = ReturnStatus
RETURN_TRANSITIONS: dict[ReturnStatus, set[ReturnStatus]] = {
    _S.REQUESTED: {_S.AUTHORIZED, _S.REJECTED, _S.CANCELLED},
    _S.AUTHORIZED: {_S.RECEIVED, _S.CANCELLED, _S.EXPIRED},
    _S.RECEIVED: {_S.INSPECTED},
    _S.INSPECTED: {_S.CLOSED},
    _S.REJECTED: set(),
    _S.CLOSED: set(),
    _S.CANCELLED: set(),
    _S.EXPIRED: set(),
}
"""Return status -> statuses it may move to next."""

RETURN_LIFECYCLE = Lifecycle(ReturnStatus, RETURN_TRANSITIONS, IllegalReturnTransition)


class ReturnAuthorization(CanonicalModel):
    """An RMA: permission for the customer to send lines of an order back."""

    id: ReturnId
    version: Version = 1
    order_id: OrderId
    customer_id: CustomerId | None = None
    case_id: CaseId | None = None
    status: ReturnStatus = ReturnStatus.REQUESTED
    lines: list[ReturnLine] = Field(min_length=1, max_length=1000)
    requested_at: Timestamp
    authorized_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    label_reference: ShortText | None = None

    def transition_to(self, new_status: ReturnStatus) -> ReturnAuthorization:
        """A copy in ``new_status`` (version bumped); IllegalReturnTransition if not allowed."""
        return RETURN_LIFECYCLE.advance(self, new_status)
