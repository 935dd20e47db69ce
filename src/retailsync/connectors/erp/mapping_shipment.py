"""Tryton customer shipments (``stock.shipment.out``) -> canonical shipments (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from retailsync.connectors.erp.mapping_common import aware, last_change
from retailsync.domain.shipments import Shipment, ShipmentLine, ShipmentStatus

SHIPMENT_FIELDS = (
    "number",
    "state",
    "effective_date",
    "outgoing_moves",
    "warehouse",
    "create_date",
    "write_date",
)
MOVE_FIELDS = ("product", "quantity", "origin", "state")

CARRIER_NOT_RECORDED = "unassigned"
"""Carrier of shipments whose ERP record names none (Tryton without the carrier module)."""

SHIPMENT_STATUS_BY_STATE: Mapping[str, ShipmentStatus] = {
    "draft": ShipmentStatus.PENDING,
    "waiting": ShipmentStatus.PENDING,
    "assigned": ShipmentStatus.PENDING,
    "picked": ShipmentStatus.PENDING,
    "packed": ShipmentStatus.PENDING,
    "shipped": ShipmentStatus.DISPATCHED,
    "done": ShipmentStatus.DISPATCHED,
    "cancelled": ShipmentStatus.CANCELLED,
}
"""Tryton ``stock.shipment.out.state`` -> canonical status ("done" means it left the dock)."""


def shipment_status(state: str) -> ShipmentStatus:
    try:
        return SHIPMENT_STATUS_BY_STATE[state]
    except KeyError:
        raise ValueError(f"unknown Tryton shipment state {state!r}") from None


def to_shipment(
    record: Mapping[str, Any],
    moves: Sequence[Mapping[str, Any]],
    *,
    shipment_id: str,
    order_id: str,
    skus: Mapping[int, str],
    ship_from: str | None,
    line_numbers: Mapping[int, int] | None = None,
) -> Shipment:
    """The canonical shipment for a Tryton shipment and its outgoing moves.

    ``skus`` maps product id -> SKU; ``line_numbers`` maps sale line id -> order line number.
    """
    status = shipment_status(record["state"])
    lines = []
    for move in moves:
        if move.get("state") == "cancelled" and status is not ShipmentStatus.CANCELLED:
            continue  # a cancelled line of a live shipment is not in the parcel
        origin = move.get("origin") or ""
        sale_line_id = int(origin.split(",")[1]) if origin.startswith("sale.line,") else None
        lines.append(
            ShipmentLine(
                sku=skus[move["product"]],
                quantity=int(move["quantity"]),
                order_line_no=(line_numbers or {}).get(sale_line_id) if sale_line_id else None,
            )
        )
    return Shipment(
        id=shipment_id,
        order_id=order_id,
        status=status,
        carrier=CARRIER_NOT_RECORDED,
        tracking_number=record.get("number"),
        ship_from=ship_from,
        lines=lines,
        dispatched_at=aware(last_change(record)) if status is ShipmentStatus.DISPATCHED else None,
    )
