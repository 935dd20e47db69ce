"""Tryton stock (product quantities, ``stock.move``) <-> canonical inventory (pure functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from retailsync.connectors.erp.mapping_common import aware, derived_id, last_change
from retailsync.domain.identifiers import EntityKind
from retailsync.domain.inventory import AdjustmentReason, InventoryAdjustment, InventoryPosition

MOVE_FIELDS = (
    "product",
    "quantity",
    "from_location",
    "to_location",
    "shipment",
    "state",
    "effective_date",
    "create_date",
    "write_date",
)

REASON_BY_SHIPMENT_MODEL: Mapping[str, AdjustmentReason] = {
    "stock.shipment.out": AdjustmentReason.SOLD,
    "stock.shipment.out.return": AdjustmentReason.RETURNED_TO_STOCK,
    "stock.shipment.in": AdjustmentReason.RECEIVED,
    "stock.shipment.internal": AdjustmentReason.TRANSFER_IN,
}
"""Which kind of ERP document moved the goods -> why the stock changed."""


def position(
    *,
    sku: str,
    location: str,
    quantity: float,
    forecast_quantity: float,
    as_of: dt.datetime,
) -> InventoryPosition:
    """A stock reading: ``quantity`` on hand; planned outgoing moves count as reserved."""
    on_hand = int(quantity)
    return InventoryPosition(
        sku=sku,
        location=location,
        on_hand=on_hand,
        reserved=max(0, on_hand - int(forecast_quantity)),
        allocated=0,
        in_transit=0,
        as_of=as_of,
    )


def adjustment_inventory_values(
    adjustment: InventoryAdjustment,
    *,
    product_id: int,
    location_id: int,
    counted: int,
    company_id: int,
) -> dict[str, Any]:
    """A one-line ``stock.inventory`` (stock count) that brings the location to ``counted``."""
    return {
        "location": location_id,
        "company": company_id,
        "date": adjustment.occurred_at.date(),
        "lines": [["create", [{"product": product_id, "quantity": float(counted)}]]],
    }


def to_adjustment(
    move: Mapping[str, Any],
    *,
    watched_location_id: int,
    location_code: str,
    sku: str,
    lost_found_id: int | None = None,
) -> InventoryAdjustment | None:
    """The canonical adjustment a done move makes to ``watched_location``, if it touches it."""
    if move.get("state") != "done":
        return None
    into = move["to_location"] == watched_location_id
    out_of = move["from_location"] == watched_location_id
    if into == out_of:
        return None
    quantity = int(move["quantity"])
    if quantity == 0:
        return None
    shipment_model = (move.get("shipment") or "").partition(",")[0]
    other = move["from_location"] if into else move["to_location"]
    if shipment_model in REASON_BY_SHIPMENT_MODEL:
        reason = REASON_BY_SHIPMENT_MODEL[shipment_model]
        if reason is AdjustmentReason.TRANSFER_IN and out_of:
            reason = AdjustmentReason.TRANSFER_OUT
    elif lost_found_id is not None and other == lost_found_id:
        reason = AdjustmentReason.CORRECTION
    else:
        reason = AdjustmentReason.TRANSFER_IN if into else AdjustmentReason.TRANSFER_OUT
    stamp = aware(last_change(move))
    assert stamp is not None
    return InventoryAdjustment(
        id=derived_id(EntityKind.INVENTORY_ADJUSTMENT, "stock.move", int(move["id"])),
        sku=sku,
        location=location_code,
        delta=quantity if into else -quantity,
        reason=reason,
        reference=f"stock.move,{move['id']}",
        occurred_at=stamp,
    )
