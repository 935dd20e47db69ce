"""What the order 360 answers: the view models an agent's screen (and the console) renders.

The parts (shipments, returns, refunds, cases, postings) are built from events that may arrive
in any order, so every field that a later event fills in is optional; the canonical pieces
(lines, money, statuses) are the canonical types from :mod:`retailsync.domain`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from retailsync.domain.cases import CasePriority, CaseStatus
from retailsync.domain.catalogue import InspectedLine, ReceivedLine
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus
from retailsync.domain.money import Money
from retailsync.domain.orders import OrderStatus
from retailsync.domain.refunds import RefundMethod, RefundStatus
from retailsync.domain.returns import ReturnLine, ReturnStatus
from retailsync.domain.shipments import (
    Shipment,
    ShipmentExceptionCode,
    ShipmentLine,
    ShipmentStatus,
)

__all__ = [
    "CaseView",
    "ErpOrderSnapshot",
    "ErpView",
    "ExceptionKind",
    "OpenException",
    "Order360View",
    "OrderHeader",
    "OrderLineView",
    "PaymentState",
    "PaymentStatus",
    "PostingView",
    "RefundView",
    "ReturnEligibility",
    "ReturnView",
    "ShipmentProblem",
    "ShipmentView",
]


class _View(BaseModel):
    """Base of the parts: unknown keys in a stored document are ignored (older layouts)."""

    model_config = {"extra": "ignore"}


class ShipmentProblem(_View):
    """The carrier's last reported exception on a shipment."""

    code: ShipmentExceptionCode
    description: str | None = None
    occurred_at: datetime


class ShipmentView(_View):
    id: str
    version: int | None = None
    status: ShipmentStatus | None = None
    carrier: str | None = None
    service_level: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    ship_from: str | None = None
    lines: list[ShipmentLine] = Field(default_factory=list)
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = None
    signed_by: str | None = None
    exception: ShipmentProblem | None = None


class ReturnView(_View):
    id: str
    version: int | None = None
    status: ReturnStatus | None = None
    case_id: str | None = None
    lines: list[ReturnLine] = Field(default_factory=list)
    requested_at: datetime | None = None
    authorized_at: datetime | None = None
    expires_at: datetime | None = None
    label_reference: str | None = None
    received_at: datetime | None = None
    received_lines: list[ReceivedLine] = Field(default_factory=list)
    inspected_at: datetime | None = None
    inspection: list[InspectedLine] = Field(default_factory=list)


class RefundView(_View):
    id: str
    version: int | None = None
    status: RefundStatus | None = None
    amount: Money | None = None
    method: RefundMethod | None = None
    reason: str | None = None
    rma_id: str | None = None
    case_id: str | None = None
    requested_at: datetime | None = None
    requested_by: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_reason: str | None = None
    completed_at: datetime | None = None
    payment_reference: str | None = None
    failure_reason: str | None = None
    retryable: bool | None = None
    failed_at: datetime | None = None


class CaseView(_View):
    """A service case linked to the order."""

    id: str
    version: int | None = None
    status: CaseStatus | None = None
    priority: CasePriority | None = None
    subject: str | None = None
    channel: str | None = None
    assignee: str | None = None
    opened_at: datetime | None = None
    updated_at: datetime | None = None
    last_note: str | None = None


class PostingView(_View):
    """An invoice or credit note the ERP posted for the order (or one of its returns)."""

    id: str
    version: int | None = None
    kind: PostingKind | None = None
    status: PostingStatus | None = None
    amount: Money | None = None
    tax: Money | None = None
    document_number: str | None = None
    rma_id: str | None = None
    refund_id: str | None = None
    posted_at: datetime | None = None
    reason: str | None = None


class ExceptionKind(StrEnum):
    SHIPMENT = "shipment"
    REFUND = "refund"
    INTEGRATION = "integration"


class OpenException(BaseModel):
    """Something about the order that needs a person: a carrier problem, a failed refund, or an
    event the hub could not apply (an entry in the exception queue)."""

    kind: ExceptionKind
    reference: str = Field(description="The shipment, refund or event the exception is about")
    code: str
    description: str | None = None
    since: datetime | None = None
    exception_id: int | None = Field(
        default=None, description="Exception queue entry (integration exceptions)"
    )


class PaymentStatus(StrEnum):
    NOT_INVOICED = "not_invoiced"
    INVOICED = "invoiced"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentState(BaseModel):
    """Where the money stands: invoiced and settled in the ERP, refunded to the customer."""

    status: PaymentStatus
    invoiced: Money
    settled: Money
    credited: Money
    refunded: Money
    refund_pending: Money


class OrderHeader(BaseModel):
    """The order itself, as the channel placed it (lines are in ``lines``)."""

    id: str
    version: int | None = None
    channel: str | None = None
    customer_id: str | None = None
    currency: str | None = None
    placed_at: datetime | None = None
    subtotal: Money | None = None
    shipping_total: Money | None = None
    tax_total: Money | None = None
    grand_total: Money | None = None


class OrderLineView(BaseModel):
    """One order line, with how much of it shipped and how much is on its way back."""

    line_no: int
    sku: str
    description: str | None = None
    quantity: int
    unit_price: Money
    line_total: Money
    shipped_quantity: int
    returned_quantity: int


class ErpOrderSnapshot(BaseModel):
    """The ERP-owned part of an order as the ERP last confirmed it (stored in the read model).

    Frozen: one parsed snapshot is shared by every answer that reads the same stored text.
    """

    model_config = ConfigDict(frozen=True)

    status: OrderStatus
    erp_state: str
    total: Money
    cancellable: bool
    shipments: list[Shipment] = Field(default_factory=list)
    postings: list[FinancialPosting] = Field(default_factory=list)


class ErpView(BaseModel):
    """What the ERP said about the order, and when."""

    status: OrderStatus
    erp_state: str = Field(description="The ERP's own words for the order's state")
    total: Money
    cancellable: bool
    checked_at: datetime


class Order360View(BaseModel):
    """Everything about one order an agent needs, in one answer.

    ``stale`` is true when the hub could not confirm the ERP-owned part just now (the ERP is
    slow, down, or its circuit is open): the answer then comes from the read model as of
    ``as_of``, ``age_seconds`` old.
    """

    order_id: str
    stale: bool
    as_of: datetime
    age_seconds: float
    stale_reason: str | None = None
    status: OrderStatus | None = None
    status_reason: str | None = None
    order: OrderHeader
    lines: list[OrderLineView]
    payment: PaymentState | None
    shipments: list[ShipmentView]
    returns: list[ReturnView]
    refunds: list[RefundView]
    postings: list[PostingView]
    open_exceptions: list[OpenException]
    cases: list[CaseView]
    erp: ErpView | None


class ReturnEligibility(BaseModel):
    """Whether (and how much of) an order line may be returned now, and every rule that fired."""

    order_id: str
    line_no: int
    sku: str
    eligible: bool
    verdict: str
    reasons: list[str]
    quantity: int = Field(description="The quantity the check was made for")
    ordered_quantity: int
    returned_quantity: int
    returnable_quantity: int
    window_ends_at: datetime
    as_of: datetime
