"""Tryton customer invoices and credit notes (``account.invoice``) -> canonical postings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from retailsync.connectors.erp.mapping_common import aware, last_change, money
from retailsync.domain.finance import FinancialPosting, PostingKind, PostingStatus

INVOICE_FIELDS = (
    "number",
    "state",
    "type",
    "total_amount",
    "tax_amount",
    "invoice_date",
    "sales",
    "create_date",
    "write_date",
)

POSTING_STATUS_BY_STATE: Mapping[str, PostingStatus] = {
    "draft": PostingStatus.DRAFT,
    "validated": PostingStatus.DRAFT,
    "posted": PostingStatus.POSTED,
    "paid": PostingStatus.SETTLED,
    "cancelled": PostingStatus.CANCELLED,
}
"""Tryton ``account.invoice.state`` -> canonical posting status."""


def posting_kind(total_amount: Decimal) -> PostingKind:
    """A customer invoice with a negative total is a credit note (Tryton keeps one model)."""
    return PostingKind.CREDIT_NOTE if total_amount < 0 else PostingKind.INVOICE


def posting_status(state: str) -> PostingStatus:
    try:
        return POSTING_STATUS_BY_STATE[state]
    except KeyError:
        raise ValueError(f"unknown Tryton invoice state {state!r}") from None


def to_posting(
    record: Mapping[str, Any],
    *,
    posting_id: str,
    currency: str,
    order_id: str | None = None,
    rma_id: str | None = None,
    customer_id: str | None = None,
) -> FinancialPosting:
    """The canonical posting for a Tryton invoice; amounts are positive, the kind says which way."""
    total = Decimal(record.get("total_amount") or 0)
    status = posting_status(record["state"])
    created = aware(record.get("create_date")) or aware(last_change(record))
    assert created is not None
    posted_at: dt.datetime | None = None
    if status in {PostingStatus.POSTED, PostingStatus.SETTLED}:
        posted_at = aware(last_change(record))
    return FinancialPosting(
        id=posting_id,
        kind=posting_kind(total),
        status=status,
        amount=money(abs(total), currency),
        tax=money(abs(Decimal(record.get("tax_amount") or 0)), currency),
        document_number=record.get("number") or None,
        customer_id=customer_id,
        order_id=order_id,
        rma_id=rma_id,
        created_at=created,
        posted_at=posted_at,
    )
