"""Financial postings the ERP makes: invoices, credit notes, payments and write-offs."""

from __future__ import annotations

from enum import StrEnum

from pydantic import model_validator

from retailsync.domain.base import (
    CanonicalModel,
    LongText,
    ShortText,
    Timestamp,
    Version,
    require_currency,
)
from retailsync.domain.errors import IllegalPostingTransition, InvalidMoney
from retailsync.domain.identifiers import CustomerId, OrderId, PostingId, RefundId, ReturnId
from retailsync.domain.lifecycle import Lifecycle
from retailsync.domain.money import Money

__all__ = [
    "POSTING_LIFECYCLE",
    "POSTING_TRANSITIONS",
    "FinancialPosting",
    "PostingKind",
    "PostingStatus",
]


class PostingKind(StrEnum):
    """The kind of financial document."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    PAYMENT = "payment"
    WRITE_OFF = "write_off"


class PostingStatus(StrEnum):
    """Where a posting is in the ERP's books."""

    DRAFT = "draft"
    POSTED = "posted"
    SETTLED = "settled"
    REVERSED = "reversed"
    CANCELLED = "cancelled"


_S = PostingStatus
POSTING_TRANSITIONS: dict[PostingStatus, set[PostingStatus]] = {
    _S.DRAFT: {_S.POSTED, _S.CANCELLED},
    _S.POSTED: {_S.SETTLED, _S.REVERSED},
    _S.SETTLED: {_S.REVERSED},
    _S.REVERSED: set(),
    _S.CANCELLED: set(),
}
"""Posting status -> statuses it may move to next (posted documents are reversed, not edited)."""

POSTING_LIFECYCLE = Lifecycle(PostingStatus, POSTING_TRANSITIONS, IllegalPostingTransition)


class FinancialPosting(CanonicalModel):
    """A document in the ERP's books; ``amount`` is positive and ``kind`` says the direction."""

    id: PostingId
    version: Version = 1
    kind: PostingKind
    status: PostingStatus = PostingStatus.DRAFT
    amount: Money
    tax: Money | None = None
    document_number: ShortText | None = None
    customer_id: CustomerId | None = None
    order_id: OrderId | None = None
    refund_id: RefundId | None = None
    rma_id: ReturnId | None = None
    description: LongText | None = None
    created_at: Timestamp
    posted_at: Timestamp | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FinancialPosting:
        require_currency(f"posting {self.id}", self.amount.currency, (self.tax,))
        if self.amount.is_negative():
            raise InvalidMoney(
                f"posting {self.id} amount must not be negative, got {self.amount}; "
                f"use the kind (credit_note, write_off) for the direction"
            )
        return self

    def transition_to(self, new_status: PostingStatus) -> FinancialPosting:
        """A copy in ``new_status`` (version bumped); IllegalPostingTransition if not allowed."""
        return POSTING_LIFECYCLE.advance(self, new_status)
