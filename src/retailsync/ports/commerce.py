"""What the hub needs from a commerce storefront: orders and published stock levels.

Amounts are canonical :class:`~retailsync.domain.money.Money`; ids are the storefront's
own ids as strings (the cross-reference table maps them to canonical ids).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from retailsync.domain.money import Money


@dataclass(frozen=True, slots=True)
class StorefrontOrderLine:
    """One line of a storefront order."""

    line_ref: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class StorefrontOrder:
    """An order as the storefront holds it."""

    order_ref: str
    name: str
    status: str
    financial_status: str | None
    fulfillment_status: str | None
    total: Money
    created_at: datetime
    updated_at: datetime
    customer_ref: str | None
    customer_email: str | None
    lines: tuple[StorefrontOrderLine, ...]


@dataclass(frozen=True, slots=True)
class StockLevel:
    """Units available to sell for one item at one location, as the storefront shows it."""

    inventory_item_ref: str
    location_ref: str
    available: int
    updated_at: datetime | None


class CommercePort(Protocol):
    """Read orders from, show their status in, and publish available-to-sell quantities to, a
    storefront."""

    async def get_order(self, order_ref: str) -> StorefrontOrder:
        """One order by its storefront id."""
        ...

    def iter_orders(
        self, *, updated_since: datetime | None = None, page_size: int = 50
    ) -> AsyncIterator[StorefrontOrder]:
        """Every order (updated since the given time), following all pages."""
        ...

    async def update_order_status(
        self,
        order_ref: str,
        status: str,
        *,
        idempotency_key: str,
        tracking_number: str | None = None,
        note: str | None = None,
    ) -> None:
        """Show the order's new status in the storefront.

        ``status`` is a canonical order status word (:class:`~retailsync.domain.orders.
        OrderStatus`): ``shipped`` / ``delivered`` fulfil what is still open (with the tracking
        number), ``cancelled`` cancels the order, ``completed`` closes it, any other status is
        recorded on the order. ``note`` is added to the order's note once. Idempotent: a
        storefront order already in that state is left as it is.
        """
        ...

    async def set_available(
        self, *, inventory_item_ref: str, location_ref: str, available: int
    ) -> StockLevel:
        """Set the quantity the storefront offers for an item at a location (absolute)."""
        ...
