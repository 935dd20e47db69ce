"""Canonical orders <-> Tryton sales (``sale.sale`` / ``sale.line``): tables, pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from retailsync.connectors.erp.mapping_common import money
from retailsync.domain.money import Money
from retailsync.domain.orders import Order, OrderStatus

PRICE_QUANTUM = Decimal("0.0001")
"""Tryton's default unit price precision (4 decimals)."""

SALE_FIELDS = (
    "reference",
    "number",
    "state",
    "shipment_state",
    "invoice_state",
    "total_amount",
    "party",
    "origin",
    "description",
    "shipments",
    "shipment_returns",
    "invoices",
    "create_date",
    "write_date",
)

ORDER_STATUS_BY_SALE_STATE: Mapping[str, OrderStatus] = {
    "draft": OrderStatus.PENDING,
    "quotation": OrderStatus.PENDING,
    "confirmed": OrderStatus.CONFIRMED,
    "processing": OrderStatus.PROCESSING,
    "done": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
}
"""Tryton ``sale.state`` -> canonical status (refined by the shipment state below)."""

ORDER_STATUS_BY_SHIPMENT_STATE: Mapping[str, OrderStatus] = {
    "partially shipped": OrderStatus.PARTIALLY_SHIPPED,
    "sent": OrderStatus.SHIPPED,
}
"""While a sale is ``processing``: Tryton ``shipment_state`` that says more than "processing"."""

CANCELLABLE_SALE_STATES = frozenset({"draft", "quotation"})
"""States from which Tryton's own ``cancel`` button works."""


def order_status(state: str, shipment_state: str | None) -> OrderStatus:
    """The canonical status of a sale in ``state`` whose goods are ``shipment_state``."""
    try:
        status = ORDER_STATUS_BY_SALE_STATE[state]
    except KeyError:
        raise ValueError(f"unknown Tryton sale state {state!r}") from None
    if status is OrderStatus.PROCESSING and shipment_state:
        return ORDER_STATUS_BY_SHIPMENT_STATE.get(shipment_state, status)
    return status


def describe_sale(record: Mapping[str, Any]) -> str:
    """The ERP's own words for a sale's state, e.g. ``processing / shipment sent / ...``."""
    return (
        f"{record['state']} / shipment {record.get('shipment_state') or '-'}"
        f" / invoice {record.get('invoice_state') or '-'}"
    )


def sale_values(
    order: Order,
    *,
    company_id: int,
    currency_id: int,
    party_id: int,
    invoice_address_id: int,
    shipment_address_id: int,
    payment_term_id: int,
    products: Mapping[str, tuple[int, int]],
) -> dict[str, Any]:
    """``sale.sale.create`` values for ``order``; ``products`` maps SKU -> (product id, unit id).

    The canonical id becomes the sale's ``reference``, so the order can be found again.
    Lines keep their line number as ``sequence`` and the canonical unit price (after discount).
    """
    lines = []
    for line in sorted(order.lines, key=lambda item: item.line_no):
        product_id, unit_id = products[line.sku]
        unit_price = (line.line_total.amount / line.quantity).quantize(PRICE_QUANTUM)
        lines.append(
            {
                "type": "line",
                "sequence": line.line_no,
                "product": product_id,
                "unit": unit_id,
                "quantity": float(line.quantity),
                "unit_price": unit_price,
                **({"description": line.description} if line.description else {}),
            }
        )
    return {
        "company": company_id,
        "currency": currency_id,
        "party": party_id,
        "invoice_address": invoice_address_id,
        "shipment_address": shipment_address_id,
        "payment_term": payment_term_id,
        "reference": order.id,
        "description": f"{order.channel} order {order.id}",
        "sale_date": order.placed_at.date(),
        "lines": [["create", lines]],
    }


def order_total(record: Mapping[str, Any], currency: str) -> Money:
    """The sale's total (taxes included) as Money."""
    return money(record.get("total_amount"), currency)
