"""Inventory: the stock position of a SKU at a location, and signed adjustments to it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from retailsync.domain.base import (
    CanonicalModel,
    LocationCode,
    NonZeroInt,
    ShortText,
    Sku,
    Timestamp,
    Version,
)
from retailsync.domain.identifiers import AdjustmentId

__all__ = ["AdjustmentReason", "InventoryAdjustment", "InventoryPosition", "position_key"]

_UNITS = Field(ge=0, le=1_000_000_000)


def position_key(sku: str, location: str) -> str:
    """The identity of a stock position, ``SKU@LOCATION`` (neither may contain ``@``)."""
    return f"{sku}@{location}"


class InventoryPosition(CanonicalModel):
    """Units of one SKU at one location, as one system reported them at ``as_of``.

    ``on_hand`` may be negative when the reporting system allows overselling.
    """

    sku: Sku
    location: LocationCode
    version: Version = 1
    on_hand: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    reserved: int = _UNITS
    allocated: int = _UNITS
    in_transit: int = _UNITS
    as_of: Timestamp

    @property
    def key(self) -> str:
        """``SKU@LOCATION``: the entity id used as partition key."""
        return position_key(self.sku, self.location)

    @property
    def available_to_sell(self) -> int:
        """On hand minus reserved minus allocated plus in transit, never below zero."""
        return max(0, self.on_hand - self.reserved - self.allocated + self.in_transit)


class AdjustmentReason(StrEnum):
    """Why stock changed."""

    RECEIVED = "received"
    SOLD = "sold"
    RETURNED_TO_STOCK = "returned_to_stock"
    DAMAGED = "damaged"
    SHRINKAGE = "shrinkage"
    CYCLE_COUNT = "cycle_count"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    CORRECTION = "correction"


class InventoryAdjustment(CanonicalModel):
    """A signed change to on-hand stock; its id makes applying it twice detectable."""

    id: AdjustmentId
    sku: Sku
    location: LocationCode
    delta: NonZeroInt
    reason: AdjustmentReason
    reference: ShortText | None = None
    occurred_at: Timestamp

    @property
    def key(self) -> str:
        """``SKU@LOCATION`` of the position this adjustment changes."""
        return position_key(self.sku, self.location)

    def apply_to(self, position: InventoryPosition) -> InventoryPosition:
        """The position after this adjustment (version bumped)."""
        if position.key != self.key:
            raise ValueError(
                f"adjustment {self.id} is for {self.key}, not for position {position.key}"
            )
        return position.model_copy(
            update={
                "on_hand": position.on_hand + self.delta,
                "version": position.version + 1,
                "as_of": max(position.as_of, self.occurred_at),
            }
        )
