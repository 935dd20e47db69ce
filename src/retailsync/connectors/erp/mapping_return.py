"""Canonical return authorizations -> Tryton return sales (a sale with negative quantities).

Tryton's own "return sale" is a sale whose lines have negative quantities and whose ``origin``
is the original sale: confirming it plans a customer return shipment and a credit note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retailsync.domain.returns import ReturnAuthorization


def return_sale_values(
    rma: ReturnAuthorization,
    *,
    original: Mapping[str, Any],
    original_sale_id: int,
    lines_by_sku: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """``sale.sale.create`` values for ``rma`` against the original sale record.

    ``lines_by_sku`` maps SKU -> the original ``sale.line`` (product, unit, unit_price), so the
    credit is at the price the customer paid.
    """
    lines = []
    for number, line in enumerate(rma.lines, start=1):
        original_line = lines_by_sku[line.sku]
        lines.append(
            {
                "type": "line",
                "sequence": number,
                "product": original_line["product"],
                "unit": original_line["unit"],
                "quantity": -float(line.quantity),
                "unit_price": original_line["unit_price"],
                "description": f"Return of {line.sku}: {line.reason.value}",
            }
        )
    return {
        "company": original["company"],
        "currency": original["currency"],
        "party": original["party"],
        "invoice_address": original["invoice_address"],
        "shipment_address": original["shipment_address"],
        "payment_term": original["payment_term"],
        "reference": rma.id,
        "origin": f"sale.sale,{original_sale_id}",
        "description": f"Return {rma.id} of order {rma.order_id}",
        "lines": [["create", lines]],
    }
