"""What the hub needs from a payment service: payment state, refunds, refund history.

Amounts cross this port as canonical :class:`~retailsync.domain.money.Money`; each adapter
converts to its vendor's representation (for example Stripe's integer minor units). Every
refund carries an idempotency key derived from the workflow step that issues it, so a retried
step never refunds twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from retailsync.domain.money import Money


class PaymentStatus(StrEnum):
    """Where a payment stands, in the hub's words (vendor states map onto these)."""

    AWAITING_CUSTOMER = "awaiting_customer"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CANCELED = "canceled"
    FAILED = "failed"


class RefundStatus(StrEnum):
    """Lifecycle of one refund at the payment service."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PaymentState:
    """A payment as the payment service sees it right now."""

    payment_ref: str
    status: PaymentStatus
    amount: Money
    amount_captured: Money
    amount_refunded: Money
    charge_refs: tuple[str, ...] = ()
    order_ref: str | None = None
    vendor_status: str = ""

    @property
    def refundable(self) -> Money:
        """What can still be refunded: captured minus already refunded (never negative)."""
        left = self.amount_captured - self.amount_refunded
        return Money.zero(left.currency) if left.is_negative() else left


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """One refund at the payment service."""

    refund_ref: str
    payment_ref: str | None
    charge_ref: str | None
    status: RefundStatus
    amount: Money
    created_at: datetime
    reason: str | None = None
    failure_reason: str | None = None
    order_ref: str | None = None
    refund_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class PaymentsPort(Protocol):
    """Read payments and issue refunds at the payment service (Stripe, ...)."""

    async def payment_state(self, payment_ref: str) -> PaymentState:
        """The current state of a payment (payment intent or charge id)."""
        ...

    async def issue_refund(
        self,
        *,
        payment_ref: str,
        idempotency_key: str,
        amount: Money | None = None,
        reason: str | None = None,
        order_ref: str | None = None,
        refund_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundRecord:
        """Refund ``amount`` (all that is refundable when None) of a payment.

        ``idempotency_key`` must be derived from the calling workflow step (for example
        ``f"{workflow_id}:issue_refund"``): repeating the call with the same key and the same
        arguments returns the same refund instead of creating a second one. ``refund_id`` is
        the canonical refund id (``ref_...``), stored with the payment service's refund so its
        webhooks map back to the same canonical refund.
        """
        ...

    async def void_payment(self, payment_ref: str, *, idempotency_key: str) -> None:
        """Release an authorization that was never captured (an order cancelled before it
        shipped), so the customer's funds are no longer held.

        Idempotent: voiding a payment that is already voided succeeds. A business error when
        the payment was captured (refund it instead) or cannot be voided in its state.
        """
        ...

    async def get_refund(self, refund_ref: str) -> RefundRecord:
        """One refund by its id at the payment service."""
        ...

    async def list_refunds(self, payment_ref: str | None = None) -> Sequence[RefundRecord]:
        """Every refund (of one payment when given), following all pages."""
        ...
