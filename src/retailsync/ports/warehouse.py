"""What the hub needs from the warehouse (a WMS or a 3PL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from retailsync.domain.inventory import InventoryPosition


@dataclass(frozen=True)
class ExpectedReturnLine:
    """Units of one SKU the warehouse should expect back."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class Allocation:
    """Units of a SKU at a location set aside for an order (not yet picked)."""

    allocation_id: str
    order_reference: str
    sku: str
    location: str
    quantity: int
    updated_at: datetime


class WarehousePort(Protocol):
    """Announce returns, stop picks, and read stock and allocations."""

    async def expect_return(
        self,
        *,
        rma_reference: str,
        order_reference: str,
        location: str,
        lines: Sequence[ExpectedReturnLine],
        idempotency_key: str,
    ) -> str:
        """Create a return receipt expectation; returns the warehouse's expectation id."""
        ...

    async def cancel_pick_task(self, task_id: str, *, reason: str, idempotency_key: str) -> None:
        """Cancel a pick task not yet picked (raises if already picked)."""
        ...

    def iter_positions(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[InventoryPosition]:
        """On-hand and allocated units per SKU and location, page by page."""
        ...

    def iter_allocations(
        self, *, sku: str | None = None, location: str | None = None
    ) -> AsyncIterator[Allocation]:
        """Open allocations per SKU and location, page by page."""
        ...
