"""Refunds: money going back to a customer, with the refund lifecycle table."""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

from retailsync.domain.base import CanonicalModel, LongText, ShortText, Timestamp, Version
from retailsync.domain.errors import IllegalRefundTransition, InvalidMoney
from retailsync.domain.identifiers import CaseId, CustomerId, OrderId, RefundId, ReturnId
from retailsync.domain.lifecycle import Lifecycle
from retailsync.domain.money import Money

__all__ = [
    "REFUND_LIFECYCLE",
    "REFUND_TRANSITIONS",
    "Refund",
    "RefundMethod",
    "RefundStatus",
]


class RefundStatus(StrEnum):
    """Where a refund is between request and money back."""

    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


_S = RefundStatus
REFUND_TRANSITIONS: dict[RefundStatus, set[RefundStatus]] = {
    _S.REQUESTED: {_S.PENDING_APPROVAL, _S.APPROVED, _S.REJECTED, _S.CANCELLED},
    _S.PENDING_APPROVAL: {_S.APPROVED, _S.REJECTED, _S.CANCELLED},
    _S.APPROVED: {_S.PROCESSING, _S.CANCELLED},
    _S.PROCESSING: {_S.COMPLETED, _S.FAILED},
    _S.FAILED: {_S.PROCESSING, _S.CANCELLED},
    _S.COMPLETED: set(),
    _S.REJECTED: set(),
    _S.CANCELLED: set(),
}
"""Refund status -> statuses it may move to next (a failed refund may be retried)."""

REFUND_LIFECYCLE = Lifecycle(RefundStatus, REFUND_TRANSITIONS, IllegalRefundTransition)


class RefundMethod(StrEnum):
    """How the money goes back."""

    ORIGINAL_PAYMENT = "original_payment"
    STORE_CREDIT = "store_credit"
    GIFT_CARD = "gift_card"
    BANK_TRANSFER = "bank_transfer"


class Refund(CanonicalModel):
    """Money owed back to a customer for an order, a return or a service case."""

    id: RefundId
    version: Version = 1
    status: RefundStatus = RefundStatus.REQUESTED
    amount: Money
    method: RefundMethod = RefundMethod.ORIGINAL_PAYMENT
    reason: ShortText
    order_id: OrderId | None = None
    rma_id: ReturnId | None = None
    case_id: CaseId | None = None
    customer_id: CustomerId | None = None
    requested_at: Timestamp
    requested_by: ShortText | None = None
    payment_reference: ShortText | None = None
    failure_reason: LongText | None = None

    @model_validator(mode="after")
    def _positive(self) -> Refund:
        if self.amount.is_negative() or self.amount.is_zero():
            raise InvalidMoney(
                f"refund {self.id} amount must be positive, got {self.amount}; "
                f"a refund always gives money back"
            )
        return self

    def transition_to(self, new_status: RefundStatus) -> Refund:
        """A copy in ``new_status`` (version bumped); IllegalRefundTransition if not allowed."""
        return REFUND_LIFECYCLE.advance(self, new_status)
