"""Loyalty point adjustments: signed changes to a customer's points balance."""

from __future__ import annotations

from enum import StrEnum

from retailsync.domain.base import CanonicalModel, LongText, NonZeroInt, Timestamp
from retailsync.domain.identifiers import (
    CaseId,
    CustomerId,
    LoyaltyAdjustmentId,
    OrderId,
    RefundId,
)

__all__ = ["LoyaltyAdjustment", "LoyaltyReason"]


class LoyaltyReason(StrEnum):
    """Why points changed."""

    PURCHASE = "purchase"
    RETURN = "return"
    REFUND = "refund"
    GOODWILL = "goodwill"
    EXPIRY = "expiry"
    CORRECTION = "correction"


class LoyaltyAdjustment(CanonicalModel):
    """Points added (positive) or taken away (negative); its id makes replays detectable."""

    id: LoyaltyAdjustmentId
    customer_id: CustomerId
    points: NonZeroInt
    reason: LoyaltyReason
    order_id: OrderId | None = None
    refund_id: RefundId | None = None
    case_id: CaseId | None = None
    note: LongText | None = None
    occurred_at: Timestamp
